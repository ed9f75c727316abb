"""Cross networks of DCN and DCN-v2 (``torchrec.modules.crossnet``).

Every layer mixes the current state ``x_l`` with the input ``x_0``, both ``(B, N)``::

    CrossNet                x_{l+1} = x_0 * (W_l x_l + b_l) + x_l
                            kernels.l (N, N), bias.l (N, 1)
    LowRankCrossNet         x_{l+1} = x_0 * (W_l (V_l x_l) + b_l) + x_l
                            W_kernels.l (N, r), V_kernels.l (r, N), bias.l (N,)
    VectorCrossNet          x_{l+1} = x_0 * (x_l . w_l) + b_l + x_l
                            kernels.l (N, 1), bias.l (N, 1)
    LowRankMixtureCrossNet  x_{l+1} = x_l + sum_e p_e * x_0 * (U_e g(C_e g(V_e^T x_l)) + b_l)
                            U_kernels.l / V_kernels.l (E, N, r), C_kernels.l (E, r, r), bias.l (N, 1),
                            gates.e = Linear(N, 1, bias=False) (only when E > 1)

``g`` is the activation and ``p = softmax_e(gates_e(x_l))`` (``p = 1`` with one expert).
Kernels start Xavier-normal, biases zero.
"""

from typing import Callable, List, Optional, Union

import torch
from torch import nn


def _check_positive(cls: str, name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{cls}: {name} must be an int >= 1, got {value!r}")


def _xavier(*shape: int) -> nn.Parameter:
    return nn.Parameter(nn.init.xavier_normal_(torch.empty(*shape)))


def _zeros(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.zeros(*shape))


class CrossNet(nn.Module):
    """Full-rank cross network (DCN): ``x_{l+1} = x_0 * (W_l x_l + b_l) + x_l``.

    Args:
        in_features: width ``N`` of the input.
        num_layers: number of cross layers.

    Example::

        net = CrossNet(in_features=10, num_layers=2)
        y = net(torch.randn(3, 10))  # (3, 10)
    """

    def __init__(self, in_features: int, num_layers: int) -> None:
        super().__init__()
        _check_positive("CrossNet", "in_features", in_features)
        _check_positive("CrossNet", "num_layers", num_layers)
        self._num_layers = num_layers
        self.kernels: nn.ParameterList = nn.ParameterList(
            [_xavier(in_features, in_features) for _ in range(num_layers)]
        )
        self.bias: nn.ParameterList = nn.ParameterList([_zeros(in_features, 1) for _ in range(num_layers)])

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """``input``: ``(B, N)`` -> ``(B, N)``."""
        x_0 = input.unsqueeze(2)  # (B, N, 1)
        x_l = x_0
        # zip over the ParameterLists (not indexing) keeps the loop scriptable
        for kernel, bias in zip(self.kernels, self.bias):
            xl_w = torch.matmul(kernel, x_l)  # (B, N, 1)
            x_l = x_0 * (xl_w + bias) + x_l
        return x_l.squeeze(2)


class LowRankCrossNet(nn.Module):
    """Low-rank cross network (DCN-v2): ``x_{l+1} = x_0 * (W_l (V_l x_l) + b_l) + x_l``.

    Args:
        in_features: width ``N`` of the input.
        num_layers: number of cross layers.
        low_rank: rank ``r`` of ``W_l V_l`` (>= 1).

    Example::

        net = LowRankCrossNet(in_features=10, num_layers=2, low_rank=3)
        y = net(torch.randn(3, 10))  # (3, 10)
    """

    def __init__(self, in_features: int, num_layers: int, low_rank: int = 1) -> None:
        super().__init__()
        _check_positive("LowRankCrossNet", "in_features", in_features)
        _check_positive("LowRankCrossNet", "num_layers", num_layers)
        _check_positive("LowRankCrossNet", "low_rank", low_rank)
        self._num_layers = num_layers
        self._low_rank = low_rank
        self.W_kernels: nn.ParameterList = nn.ParameterList(
            [_xavier(in_features, low_rank) for _ in range(num_layers)]
        )
        self.V_kernels: nn.ParameterList = nn.ParameterList(
            [_xavier(low_rank, in_features) for _ in range(num_layers)]
        )
        self.bias: nn.ParameterList = nn.ParameterList([_zeros(in_features) for _ in range(num_layers)])

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """``input``: ``(B, N)`` -> ``(B, N)``."""
        x_0 = input
        x_l = x_0
        for w_kernel, v_kernel, bias in zip(self.W_kernels, self.V_kernels, self.bias):
            x_l_v = nn.functional.linear(x_l, v_kernel)  # (B, r)
            x_l_w = nn.functional.linear(x_l_v, w_kernel)  # (B, N)
            x_l = x_0 * (x_l_w + bias) + x_l
        return x_l


class VectorCrossNet(nn.Module):
    """Vector cross network (DCN): ``x_{l+1} = x_0 * (x_l . w_l) + b_l + x_l``.

    Args:
        in_features: width ``N`` of the input.
        num_layers: number of cross layers.

    Example::

        net = VectorCrossNet(in_features=10, num_layers=2)
        y = net(torch.randn(3, 10))  # (3, 10)
    """

    def __init__(self, in_features: int, num_layers: int) -> None:
        super().__init__()
        _check_positive("VectorCrossNet", "in_features", in_features)
        _check_positive("VectorCrossNet", "num_layers", num_layers)
        self._num_layers = num_layers
        self.kernels: nn.ParameterList = nn.ParameterList([_xavier(in_features, 1) for _ in range(num_layers)])
        self.bias: nn.ParameterList = nn.ParameterList([_zeros(in_features, 1) for _ in range(num_layers)])

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """``input``: ``(B, N)`` -> ``(B, N)``."""
        x_0 = input.unsqueeze(2)  # (B, N, 1)
        x_l = x_0
        for kernel, bias in zip(self.kernels, self.bias):
            xl_w = torch.tensordot(x_l, kernel, dims=([1], [0]))  # (B, 1, 1)
            x_l = torch.matmul(x_0, xl_w) + bias + x_l  # (B, N, 1)
        return x_l.squeeze(2)


class LowRankMixtureCrossNet(nn.Module):
    """Mixture of low-rank cross experts (DCN-v2 "DCN-Mix").

    Expert ``e`` of layer ``l``: ``x_0 * (U_e g(C_e g(V_e^T x_l)) + b_l)``; the experts are mixed
    by ``softmax(gates(x_l))`` (skipped with one expert) and added to ``x_l``.

    Args:
        in_features: width ``N`` of the input.
        num_layers: number of cross layers.
        num_experts: number of experts ``E`` per layer.
        low_rank: rank ``r`` of each expert.
        activation: non-linearity ``g`` (module or ``Tensor -> Tensor`` callable).

    Example::

        net = LowRankMixtureCrossNet(in_features=10, num_layers=2, num_experts=4, low_rank=2)
        y = net(torch.randn(3, 10))  # (3, 10)
    """

    def __init__(
        self,
        in_features: int,
        num_layers: int,
        num_experts: int = 1,
        low_rank: int = 1,
        activation: Union[nn.Module, Callable[[torch.Tensor], torch.Tensor]] = torch.relu,
    ) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("num_layers", num_layers),
                            ("num_experts", num_experts), ("low_rank", low_rank)):
            _check_positive("LowRankMixtureCrossNet", name, value)
        self._num_layers = num_layers
        self._num_experts = num_experts
        self._low_rank = low_rank
        self._in_features = in_features
        self.U_kernels: nn.ParameterList = nn.ParameterList(
            [_xavier(num_experts, in_features, low_rank) for _ in range(num_layers)]
        )
        # TorchRec's shapes and registration order (state-dict keys and checkpoints match): V is (E, r, N)
        self.V_kernels: nn.ParameterList = nn.ParameterList(
            [_xavier(num_experts, low_rank, in_features) for _ in range(num_layers)]
        )
        self.bias: nn.ParameterList = nn.ParameterList([_zeros(in_features, 1) for _ in range(num_layers)])
        self.gates: Optional[nn.ModuleList] = (
            nn.ModuleList([nn.Linear(in_features, 1, bias=False) for _ in range(num_experts)])
            if num_experts > 1
            else None
        )
        self._activation: Union[nn.Module, Callable[[torch.Tensor], torch.Tensor]] = activation
        self.C_kernels: nn.ParameterList = nn.ParameterList(
            [_xavier(num_experts, low_rank, low_rank) for _ in range(num_layers)]
        )

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """``input``: ``(B, N)`` -> ``(B, N)``."""
        x_0 = input.unsqueeze(2)  # (B, N, 1)
        x_l = x_0
        for u_kernels, v_kernels, c_kernels, bias in zip(self.U_kernels, self.V_kernels, self.C_kernels, self.bias):
            experts: List[torch.Tensor] = []
            for i in range(self._num_experts):
                expert = torch.matmul(v_kernels[i], x_l)  # (B, r, 1)
                expert = torch.matmul(c_kernels[i], self._activation(expert))  # (B, r, 1)
                expert = torch.matmul(u_kernels[i], self._activation(expert))  # (B, N, 1)
                expert = x_0 * (expert + bias)  # (B, N, 1)
                experts.append(expert.squeeze(2))
            stacked = torch.stack(experts, 2)  # (B, N, E)
            gates = self.gates
            if gates is not None:
                scores: List[torch.Tensor] = []
                for gate in gates:
                    scores.append(gate(x_l.squeeze(2)))  # (B, 1)
                gating = torch.stack(scores, 1)  # (B, E, 1)
                x_l = torch.matmul(stacked, torch.softmax(gating, 1)) + x_l  # (B, N, 1)
            else:
                x_l = stacked + x_l  # E == 1: (B, N, 1)
        return x_l.squeeze(2)
