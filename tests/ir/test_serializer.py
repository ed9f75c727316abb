"""recsys_lib.ir: EBC / FP-EBC / KTRegroupAsDict round-trip through torch.export + unflatten with their weights;
the rebuilt model's outputs equal the original eager model's."""

import copy
import json
from typing import Dict, List

import pytest
import torch
from torch import nn

from recsys_lib.ir.schema import EmbeddingBagConfigMetadata
from recsys_lib.ir.serializer import (
    EBCJsonSerializer,
    JsonSerializer,
    embedding_bag_config_to_metadata,
    embedding_metadata_to_config,
)
from recsys_lib.ir.types import SerializerInterface
from recsys_lib.ir.utils import (
    decapsulate_ir_modules,
    deserialize_embedding_modules,
    encapsulate_ir_modules,
    mark_dynamic_kjt,
    qualname,
    serialize_embedding_modules,
    unlift_and_swap_modules,
)
from recsys_lib.modules.embedding_configs import DataType, EmbeddingBagConfig, PoolingType
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from recsys_lib.modules.feature_processor_ import PositionWeightedModule, PositionWeightedModuleCollection
from recsys_lib.modules.fp_embedding_modules import FeatureProcessedEmbeddingBagCollection
from recsys_lib.modules.regroup import KTRegroupAsDict
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

T1 = EmbeddingBagConfig(name="t1", embedding_dim=3, num_embeddings=10, feature_names=["f1"])
T2 = EmbeddingBagConfig(name="t2", embedding_dim=4, num_embeddings=10, feature_names=["f2"], pooling=PoolingType.MEAN)
T2_SUM = EmbeddingBagConfig(name="t2", embedding_dim=4, num_embeddings=10, feature_names=["f2"])  # weighted: SUM
T3 = EmbeddingBagConfig(name="t3", embedding_dim=5, num_embeddings=12, feature_names=["f3"])


class _Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ebc = EmbeddingBagCollection([T1, T2, T3])
        self.fpebc1 = FeatureProcessedEmbeddingBagCollection(
            EmbeddingBagCollection([T1, T2_SUM], is_weighted=True), PositionWeightedModuleCollection({"f1": 10, "f2": 10}))
        self.fpebc2 = FeatureProcessedEmbeddingBagCollection(
            EmbeddingBagCollection([T1, T3], is_weighted=True),
            {"f1": PositionWeightedModule(10), "f3": PositionWeightedModule(20)})
        self.regroup = KTRegroupAsDict([["f3", "f1"], ["f2"]], ["a", "b"])

    def forward(self, kjt: KeyedJaggedTensor) -> List[torch.Tensor]:
        groups: Dict[str, torch.Tensor] = self.regroup([self.ebc(kjt)])
        return [groups["a"], groups["b"], self.fpebc1(kjt).values(), self.fpebc2(kjt).values()]


class _EbcRegroup(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ebc = EmbeddingBagCollection([T1, T2, T3])
        self.regroup = KTRegroupAsDict([["f3", "f1"], ["f2"]], ["a", "b"])

    def forward(self, kjt: KeyedJaggedTensor) -> List[torch.Tensor]:
        groups = self.regroup([self.ebc(kjt)])
        return [groups["a"], groups["b"]]


def _random_weights(model: nn.Module) -> nn.Module:
    torch.manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-1.0, 1.0)  # position weights too: not the default ones
    return model


def _kjt(values: List[int], lengths: List[int]) -> KeyedJaggedTensor:
    # a fresh KJT each time: a KJT that went through an eager forward carries cached per-key lengths in its pytree
    # context, which an exported program (traced without them) does not accept
    return KeyedJaggedTensor(keys=["f1", "f2", "f3"], values=torch.tensor(values), lengths=torch.tensor(lengths))


def KJT() -> KeyedJaggedTensor:  # noqa: N802
    return _kjt([0, 1, 2, 3, 2, 3, 9], [2, 0, 1, 1, 2, 1])  # B=2


def WEIGHTED_KJT() -> KeyedJaggedTensor:  # noqa: N802
    kjt = KJT()
    return KeyedJaggedTensor(keys=kjt.keys(), values=kjt.values(), lengths=kjt.lengths(),
                             weights=torch.linspace(0.5, 2.0, 7))


def OTHER() -> KeyedJaggedTensor:  # noqa: N802
    return _kjt([5, 4, 1, 7, 0, 2, 3], [1, 1, 2, 1, 0, 2])  # same sizes, other ids and per-key lengths


def _assert_same(got: List[torch.Tensor], want: List[torch.Tensor]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


def _export(model: nn.Module, kjt: KeyedJaggedTensor, dynamic: bool = False,
            variable_batch: bool = False) -> torch.export.ExportedProgram:
    encapsulated, fqns = encapsulate_ir_modules(model, JsonSerializer)
    shapes = None
    if dynamic:
        shapes = mark_dynamic_kjt(kjt, variable_batch=variable_batch).dynamic_shapes(encapsulated, (kjt,))
    return torch.export.export(encapsulated, (kjt,), strict=False, dynamic_shapes=shapes,
                               preserve_module_call_signature=tuple(fqns))


def test_round_trip_ebc_fpebc_regroup_with_weights() -> None:
    model = _random_weights(_Model())
    want = model(KJT())
    ep = _export(copy.deepcopy(model), KJT())
    rebuilt = decapsulate_ir_modules(torch.export.unflatten(ep), JsonSerializer)
    assert type(rebuilt.ebc) is EmbeddingBagCollection
    assert type(rebuilt.fpebc1) is FeatureProcessedEmbeddingBagCollection
    assert type(rebuilt.fpebc2._feature_processors["f3"]) is PositionWeightedModule
    assert type(rebuilt.regroup) is KTRegroupAsDict
    for got_t, want_t in zip(rebuilt.ebc.embedding_bag_configs(), model.ebc.embedding_bag_configs()):
        assert (got_t.name, got_t.num_embeddings, got_t.embedding_dim, got_t.feature_names, got_t.pooling) == (
            want_t.name, want_t.num_embeddings, want_t.embedding_dim, want_t.feature_names, want_t.pooling)
    _assert_same(rebuilt(KJT()), want)  # the exported weights came back (no load_state_dict)
    _assert_same(rebuilt(OTHER()), model(OTHER()))


def test_exported_program_runs_with_meta_forwards() -> None:
    model = _random_weights(_Model())
    ep = _export(copy.deepcopy(model), KJT())
    out = ep.module()(KJT())
    assert [o.shape for o in out] == [o.shape for o in model(KJT())]
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert any("ir_emb_lookup" in t for t in targets) and any("ir_kt_regroup" in t for t in targets)


def test_dynamic_ids_round_trip() -> None:
    model = _random_weights(_EbcRegroup())
    ep = _export(copy.deepcopy(model), KJT(), dynamic=True)
    rebuilt = decapsulate_ir_modules(torch.export.unflatten(ep), JsonSerializer)

    def more_ids() -> KeyedJaggedTensor:
        return _kjt(list(range(10)), [3, 0, 1, 2, 3, 1])  # B=2, 10 ids

    _assert_same(rebuilt(more_ids()), model(more_ids()))


def test_dynamic_batch_exported_program() -> None:
    model = _random_weights(_EbcRegroup())
    ep = _export(copy.deepcopy(model), KJT(), dynamic=True, variable_batch=True)
    bigger = _kjt(list(range(10)), [3, 0, 1, 2, 1, 0, 1, 1, 1])  # B=3, 10 ids
    # shape-only outputs: (B, group dims) for the new batch size
    assert [tuple(t.shape) for t in ep.module()(bigger)] == [(3, 8), (3, 4)]


def test_short_circuit_pytree_between_ebc_and_regroup() -> None:
    model = _random_weights(_EbcRegroup())
    ep = _export(copy.deepcopy(model), KJT())
    rebuilt = decapsulate_ir_modules(torch.export.unflatten(ep), JsonSerializer,
                                     finalize_interpreter_modules=True, short_circuit_pytree_ebc_regroup=True)
    _assert_same(rebuilt(KJT()), model(KJT()))
    with pytest.raises(ValueError, match="finalize_interpreter_modules"):
        decapsulate_ir_modules(torch.export.unflatten(ep), JsonSerializer, short_circuit_pytree_ebc_regroup=True)


class _TwoEbcs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ebc = EmbeddingBagCollection([T1, T2])
        self.weighted = EmbeddingBagCollection([T1, T3], is_weighted=True)

    def forward(self, kjt: KeyedJaggedTensor) -> List[torch.Tensor]:
        return [self.ebc(kjt).values(), self.weighted(kjt).values()]


def test_unlift_and_swap_modules() -> None:
    model = _random_weights(_TwoEbcs())
    gm = unlift_and_swap_modules(_export(copy.deepcopy(model), WEIGHTED_KJT()), JsonSerializer)
    _assert_same(gm(WEIGHTED_KJT()), model(WEIGHTED_KJT()))


def test_serialize_deserialize_embedding_modules_names() -> None:
    model = _random_weights(_EbcRegroup())
    encapsulated, fqns = serialize_embedding_modules(copy.deepcopy(model), JsonSerializer)
    assert fqns == ["ebc", "regroup"]
    ep = torch.export.export(encapsulated, (KJT(),), strict=False, preserve_module_call_signature=tuple(fqns))
    _assert_same(deserialize_embedding_modules(ep, JsonSerializer)(KJT()), model(KJT()))


def test_metadata_buffer_is_json_keyed_by_qualname() -> None:
    ebc = EmbeddingBagCollection([T1, T2])
    assert JsonSerializer.encapsulate_module(ebc) == []
    raw = json.loads(ebc.ir_metadata.numpy().tobytes().decode())
    assert raw["typename"] == qualname(EmbeddingBagCollection) == "recsys_lib.modules.embedding_modules.EmbeddingBagCollection"
    assert raw["metadata_dict"]["is_weighted"] is False and raw["metadata_dict"]["device"] == "cpu"
    assert [t["name"] for t in raw["metadata_dict"]["tables"]] == ["t1", "t2"]
    assert "ir_metadata" not in ebc.state_dict()  # non-persistent
    assert JsonSerializer.module_to_serializer_cls[qualname(ebc)] is EBCJsonSerializer


def test_config_metadata_round_trip() -> None:
    cfg = EmbeddingBagConfig(name="t", embedding_dim=8, num_embeddings=5, feature_names=["a", "b"],
                             data_type=DataType.FP16, pooling=PoolingType.MEAN, weight_init_max=0.5,
                             weight_init_min=-0.5, need_pos=True)
    meta = embedding_bag_config_to_metadata(cfg)
    back = embedding_metadata_to_config(EmbeddingBagConfigMetadata(**json.loads(json.dumps(meta.__dict__))))
    fields = ["name", "embedding_dim", "num_embeddings", "feature_names", "data_type", "pooling", "weight_init_max",
              "weight_init_min", "need_pos"]
    assert [getattr(back, f) for f in fields] == [getattr(cfg, f) for f in fields]


def test_errors_name_the_type() -> None:
    with pytest.raises(ValueError, match="Linear"):
        JsonSerializer.encapsulate_module(nn.Linear(2, 2))
    with pytest.raises(NotImplementedError):
        encapsulate_ir_modules(nn.Sequential(EmbeddingBagCollection([T1])), SerializerInterface)
