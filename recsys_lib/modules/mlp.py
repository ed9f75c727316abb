"""Multi-layer perceptrons (``torchrec.modules.mlp``).

State-dict layout (TorchRec's, so checkpoints load unchanged)::

    _mlp.<i>._linear.weight   (layer_sizes[i], in_i)
    _mlp.<i>._linear.bias     (layer_sizes[i],)
    _mlp.<i>._activation_fn.* only when the activation module has parameters (swish_layernorm)
"""

import inspect
from typing import Any, Callable, List, Optional, Union

import torch
from torch import nn

from recsys_lib.modules.activation import SwishLayerNorm

ActivationArg = Union[str, Callable[[], nn.Module], nn.Module, Callable[[torch.Tensor], torch.Tensor]]


def _takes_no_arguments(fn: Any) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins such as torch.relu have no Python signature
        return False
    return all(
        p.default is not inspect.Parameter.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        for p in sig.parameters.values()
    )


def _module_or_tensor_callable(activation: Any) -> Any:
    """Resolve a non-string activation argument.

    An ``nn.Module`` is used as is (shared if several layers get it); a module class or a
    zero-argument factory is called, so each layer gets its own instance; anything else
    must be a ``Tensor -> Tensor`` callable.
    """
    if isinstance(activation, nn.Module):
        return activation
    if not callable(activation):
        raise TypeError(
            f"activation must be a str, an nn.Module, a module factory or a Tensor->Tensor callable, "
            f"got {type(activation).__name__}"
        )
    if inspect.isclass(activation):
        if issubclass(activation, nn.Module):
            return activation()
        raise TypeError(f"activation class {activation.__name__} is not an nn.Module subclass")
    if _takes_no_arguments(activation):
        made = activation()
        if isinstance(made, nn.Module):
            return made
        raise TypeError(
            f"activation factory {activation!r} returned {type(made).__name__}, expected an nn.Module"
        )
    return activation


def _check_size(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


class Perceptron(nn.Module):
    """One fully connected layer followed by an activation: ``act(x @ W^T + b)``.

    Args:
        in_size: input width ``N``.
        out_size: output width ``M``.
        bias: whether the linear layer has a bias.
        activation: ``Tensor -> Tensor`` callable or module applied after the linear layer.
        device: parameter device (``"meta"`` allowed).
        dtype: parameter dtype.

    Example::

        p = Perceptron(in_size=3, out_size=5)
        y = p(torch.randn(2, 3))  # (2, 5)
    """

    def __init__(
        self,
        in_size: int,
        out_size: int,
        bias: bool = True,
        activation: Union[nn.Module, Callable[[torch.Tensor], torch.Tensor]] = torch.relu,
        device: Optional[torch.device] = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        _check_size("Perceptron in_size", in_size)
        _check_size("Perceptron out_size", out_size)
        self._out_size = out_size
        self._in_size = in_size
        self._linear: nn.Linear = nn.Linear(in_size, out_size, bias=bias, device=device, dtype=dtype)
        self._activation_fn: Callable[[torch.Tensor], torch.Tensor] = activation

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """``input``: ``(B, in_size)`` (or ``(..., in_size)``) -> ``(..., out_size)``."""
        return self._activation_fn(self._linear(input))


class MLP(nn.Module):
    """A stack of :class:`Perceptron` layers of widths ``layer_sizes``.

    Args:
        in_size: input width.
        layer_sizes: output width of each layer; the last one is the MLP's output width.
        bias: whether the linear layers have biases.
        activation: ``"relu"``, ``"sigmoid"``, ``"swish_layernorm"`` (one :class:`SwishLayerNorm`
            per layer), an ``nn.Module`` (shared by all layers), a module class / zero-argument
            factory (one instance per layer) or a ``Tensor -> Tensor`` callable.
        device: parameter device (``"meta"`` allowed).
        dtype: parameter dtype of the linear layers.
        activation_on_last: if False the last layer is linear only.

    Example::

        mlp = MLP(in_size=16, layer_sizes=[32, 8])
        y = mlp(torch.randn(4, 16))  # (4, 8)
    """

    def __init__(
        self,
        in_size: int,
        layer_sizes: List[int],
        bias: bool = True,
        activation: ActivationArg = torch.relu,
        device: Optional[torch.device] = None,
        dtype: torch.dtype = torch.float32,
        activation_on_last: bool = True,
    ) -> None:
        super().__init__()
        _check_size("MLP in_size", in_size)
        layer_sizes = list(layer_sizes)
        if len(layer_sizes) == 0:
            raise ValueError("MLP layer_sizes must name at least one layer, got []")
        for i, size in enumerate(layer_sizes):
            _check_size(f"MLP layer_sizes[{i}]", size)
        if isinstance(activation, str):
            if activation not in ("relu", "sigmoid", "swish_layernorm"):
                raise ValueError(
                    f"MLP activation string {activation!r} is not supported; "
                    "use 'relu', 'sigmoid', 'swish_layernorm' or pass a module/callable"
                )
        layers: List[nn.Module] = []
        for i, out_size in enumerate(layer_sizes):
            in_i = in_size if i == 0 else layer_sizes[i - 1]
            last = i == len(layer_sizes) - 1
            if last and not activation_on_last:
                act: Any = nn.Identity()
            elif activation == "relu":
                act = torch.relu
            elif activation == "sigmoid":
                act = torch.sigmoid
            elif activation == "swish_layernorm":
                act = SwishLayerNorm(out_size, device=device)
            else:
                act = _module_or_tensor_callable(activation)
            layers.append(Perceptron(in_i, out_size, bias=bias, activation=act, device=device, dtype=dtype))
        self._mlp: nn.Module = nn.Sequential(*layers)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """``input``: ``(B, in_size)`` -> ``(B, layer_sizes[-1])``."""
        return self._mlp(input)
