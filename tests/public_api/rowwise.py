"""Row-wise family (RW, TWRW, GRID), row-wise sequence sharding: TorchRec import paths and constructors."""

from tests.public_api import REQUIRED

_S = "recsys_lib.distributed.sharding"

NAMES = [
    (f"{_S}.rw_sharding", "RwPooledEmbeddingSharding"),
    (f"{_S}.rw_sharding", "RwSparseFeaturesDist"),
    (f"{_S}.rw_sharding", "RwPooledEmbeddingDist"),
    (f"{_S}.rw_sharding", "RwSequenceEmbeddingSharding"),
    (f"{_S}.rw_sharding", "RwSequenceEmbeddingDist"),
    (f"{_S}.rw_sequence_sharding", "RwSequenceEmbeddingSharding"),
    (f"{_S}.rw_sequence_sharding", "RwSequenceEmbeddingDist"),
    (f"{_S}.twrw_sharding", "TwRwPooledEmbeddingSharding"),
    (f"{_S}.twrw_sharding", "TwRwPooledEmbeddingDist"),
    (f"{_S}.twrw_sharding", "TwRwSparseFeaturesDist"),
    (f"{_S}.grid_sharding", "GridPooledEmbeddingSharding"),
]

_SHARDING_ARGS = [("sharding_infos", REQUIRED), ("env", REQUIRED), ("device", None)]

SIGNATURES = [
    (f"{_S}.rw_sharding", "RwPooledEmbeddingSharding", _SHARDING_ARGS + [("need_pos", False), ("qcomm_codecs_registry", None)]),
    (f"{_S}.rw_sequence_sharding", "RwSequenceEmbeddingSharding", _SHARDING_ARGS + [("need_pos", False), ("qcomm_codecs_registry", None)]),
    (f"{_S}.twrw_sharding", "TwRwPooledEmbeddingSharding", _SHARDING_ARGS + [("need_pos", False), ("qcomm_codecs_registry", None)]),
    (f"{_S}.grid_sharding", "GridPooledEmbeddingSharding", _SHARDING_ARGS + [("need_pos", False), ("qcomm_codecs_registry", None)]),
    (f"{_S}.rw_sharding", "RwPooledEmbeddingSharding.create_input_dist", [("self", REQUIRED), ("device", None)]),
    (f"{_S}.rw_sharding", "RwPooledEmbeddingSharding.create_output_dist", [("self", REQUIRED), ("device", None)]),
]
