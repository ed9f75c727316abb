"""Zoo models with input pre/post-processing modules (what train pipelines rewrite and run ahead of the model).

``TestModelWithPreproc*`` return ``(pred.sum(), pred)`` with ``pred`` the ``(B, sum D)`` concatenation of the
EBC and weighted EBC outputs; the preproc modules read the fixed keys ``feature_0..2`` / ``weighted_feature_0``.
"""

import copy
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from recsys_lib._public import public_at
from recsys_lib.distributed.test_utils._model_input import ModelInput
from recsys_lib.distributed.test_utils._zoo_archs import TestDenseArch
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from recsys_lib.modules.feature_processor import PositionWeightedProcessor
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

_FACE = "recsys_lib.distributed.test_utils.test_model"


def _select(kjt: KeyedJaggedTensor, keys: List[str]) -> List[KeyedJaggedTensor]:
    return [KeyedJaggedTensor.from_jt_dict({k: kjt[k] for k in keys})]


@public_at(_FACE)
class TestPreprocNonWeighted(nn.Module):
    """Keeps ``feature_0``, ``feature_1``, ``feature_2`` of a KJT: returns ``[KJT]`` of those keys."""

    __test__ = False

    def forward(self, kjt: KeyedJaggedTensor) -> List[KeyedJaggedTensor]:
        return _select(kjt, ["feature_0", "feature_1", "feature_2"])


@public_at(_FACE)
class TestPreprocWeighted(nn.Module):
    """Keeps ``weighted_feature_0`` (with its weights): returns ``[KJT]`` of that key."""

    __test__ = False

    def forward(self, kjt: KeyedJaggedTensor) -> List[KeyedJaggedTensor]:
        return _select(kjt, ["weighted_feature_0"])


def _ebcs(module: nn.Module, tables: List[EmbeddingBagConfig], weighted_tables: List[EmbeddingBagConfig],
          device: torch.device, num_float_features: int) -> None:
    module.dense = TestDenseArch(num_float_features, device=device)
    module.ebc = EmbeddingBagCollection(tables=tables, device=device)
    module.weighted_ebc = EmbeddingBagCollection(tables=weighted_tables, is_weighted=True, device=device)
    module.postproc_nonweighted = TestPreprocNonWeighted()
    module.postproc_weighted = TestPreprocWeighted()


def _embed(module: nn.Module, input: ModelInput) -> Tuple[torch.Tensor, torch.Tensor]:
    ids = module.postproc_nonweighted(input.idlist_features)[0]
    scored = module.postproc_weighted(input.idscore_features)[0]
    pred = torch.cat([module.ebc(ids).values(), module.weighted_ebc(scored).values()], dim=1)
    return pred.sum(), pred


@public_at(_FACE)
class TestModelWithPreproc(nn.Module):
    """EBC + weighted EBC behind the preproc modules; ``postproc_module`` (a ``ModelInput -> ModelInput``
    module) runs first, else with ``run_postproc_inline`` the id-list KJT is rebuilt by ``from_lengths_sync``.

    Returns:
        Tuple[Tensor, Tensor]: ``pred.sum()`` and ``pred`` ``(B, sum D)``.
    """

    __test__ = False

    def __init__(
        self,
        tables: List[EmbeddingBagConfig],
        weighted_tables: List[EmbeddingBagConfig],
        device: torch.device,
        postproc_module: Optional[nn.Module] = None,
        num_float_features: int = 10,
        run_postproc_inline: bool = False,
    ) -> None:
        super().__init__()
        _ebcs(self, tables, weighted_tables, device, num_float_features)
        self._postproc_module = postproc_module
        self._run_postproc_inline = run_postproc_inline

    def forward(self, input: ModelInput) -> Tuple[torch.Tensor, torch.Tensor]:
        if self._postproc_module is not None:
            input = self._postproc_module(input)
        elif self._run_postproc_inline:
            kjt = input.idlist_features
            input.idlist_features = KeyedJaggedTensor.from_lengths_sync(kjt.keys(), kjt.values(), kjt.lengths())
        return _embed(self, input)


@public_at(_FACE)
class TestModelWithPreprocCollectionArgs(nn.Module):
    """Like ``TestModelWithPreproc`` with two postproc modules: ``postproc_module_outer(input)``, then
    ``postproc_module_nested(input, [1, float_features, outer_out], {"const": 1, "tensor_from_input":
    float_features, "tensor_from_postproc": outer_out})`` (collections as arguments)."""

    __test__ = False

    CONST_DICT_KEY = "const"
    INPUT_TENSOR_DICT_KEY = "tensor_from_input"
    POSTPTOC_TENSOR_DICT_KEY = "tensor_from_postproc"

    def __init__(
        self,
        tables: List[EmbeddingBagConfig],
        weighted_tables: List[EmbeddingBagConfig],
        device: torch.device,
        postproc_module_outer: nn.Module,
        postproc_module_nested: nn.Module,
        num_float_features: int = 10,
    ) -> None:
        super().__init__()
        _ebcs(self, tables, weighted_tables, device, num_float_features)
        self._postproc_module_outer = postproc_module_outer
        self._postproc_module_nested = postproc_module_nested

    def forward(self, input: ModelInput) -> Tuple[torch.Tensor, torch.Tensor]:
        outer = self._postproc_module_outer(input)
        as_list = [1, input.float_features, outer]
        as_dict = {self.CONST_DICT_KEY: 1, self.INPUT_TENSOR_DICT_KEY: input.float_features,
                   self.POSTPTOC_TENSOR_DICT_KEY: outer}
        return _embed(self, self._postproc_module_nested(input, as_list, as_dict))


@public_at(_FACE)
class TestNegSamplingModule(nn.Module):
    """Appends ``extra_input`` to every batch: dense rows and labels along the batch, the KJTs by
    ``KeyedJaggedTensor.concat`` (keys appended, so a key may repeat). A ``ModelInput -> ModelInput`` module
    with a buffer ``test_buffer`` (and a ``Linear(30, 30)`` if ``has_params``)."""

    __test__ = False

    TEST_BUFFER_NAME = "test_buffer"

    def __init__(self, extra_input: ModelInput, has_params: bool = False) -> None:
        super().__init__()
        self._extra_input = extra_input
        self.register_buffer(self.TEST_BUFFER_NAME, torch.zeros(1))
        if has_params:
            self._linear: nn.Module = nn.Linear(30, 30)

    def forward(self, input: ModelInput) -> ModelInput:
        extra = self._extra_input
        if not isinstance(input.idlist_features, KeyedJaggedTensor) or not isinstance(
                extra.idlist_features, KeyedJaggedTensor):
            raise ValueError("TestNegSamplingModule needs KeyedJaggedTensor id-list features")
        out = copy.deepcopy(input)
        out.float_features = torch.cat([out.float_features, extra.float_features], dim=0)
        out.idlist_features = KeyedJaggedTensor.concat([out.idlist_features, extra.idlist_features])
        if extra.idscore_features is not None:
            out.idscore_features = KeyedJaggedTensor.concat([out.idscore_features, extra.idscore_features])
        out.label = torch.cat([out.label, extra.label], dim=0)
        return out


@public_at(_FACE)
class TestPositionWeightedPreprocModule(nn.Module):
    """Applies a ``PositionWeightedProcessor`` to the id-list features of a (copied) ``ModelInput``."""

    __test__ = False

    def __init__(self, max_feature_lengths: Dict[str, int], device: torch.device) -> None:
        super().__init__()
        self.fp_proc = PositionWeightedProcessor(max_feature_lengths=max_feature_lengths, device=device)

    def forward(self, input: ModelInput) -> ModelInput:
        out = copy.deepcopy(input)
        out.idlist_features = self.fp_proc(out.idlist_features)
        return out
