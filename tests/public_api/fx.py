from recsys_lib.ir.types import SerializerInterface
from tests.public_api import REQUIRED

NAMES = [
    ("recsys_lib", "fx"),
    ("recsys_lib.fx", "Tracer"),
    ("recsys_lib.fx", "symbolic_trace"),
    ("recsys_lib.fx.tracer", "Tracer"),
    ("recsys_lib.fx.tracer", "symbolic_trace"),
    ("recsys_lib.fx.tracer", "is_fx_tracing"),
    ("recsys_lib.fx.utils", "fake_range"),
    ("recsys_lib.fx.utils", "dmp_fx_trace_forward"),
    ("recsys_lib.fx.utils", "fx_marker"),
    ("recsys_lib.fx.utils", "is_marker_node"),
    ("recsys_lib.fx.utils", "assert_fx_safe"),
    *[("recsys_lib.ir.serializer", n) for n in (
        "JsonSerializer", "EBCJsonSerializer", "FPEBCJsonSerializer", "PWMJsonSerializer", "PWMCJsonSerializer",
        "KTRegroupAsDictJsonSerializer", "embedding_bag_config_to_metadata", "embedding_metadata_to_config",
        "get_deserialized_device", "ebc_meta_forward", "fpebc_meta_forward", "kt_regroup_meta_forward")],
    *[("recsys_lib.ir.utils", n) for n in (
        "encapsulate_ir_modules", "decapsulate_ir_modules", "serialize_embedding_modules",
        "deserialize_embedding_modules", "unlift_and_swap_modules", "mark_dynamic_kjt", "move_to_copy_nodes_to_device",
        "prune_pytree_flatten_unflatten", "qualname", "get_device", "ir_emb_lookup_impl", "ir_kt_regroup_impl",
        "ir_dynamic_batch_emb_lookup_impl", "DEFAULT_SERIALIZER_CLS")],
    *[("recsys_lib.ir.schema", n) for n in (
        "EmbeddingBagConfigMetadata", "EBCMetadata", "FPEBCMetadata", "PositionWeightedModuleMetadata",
        "PositionWeightedModuleCollectionMetadata", "KTRegroupAsDictMetadata")],
    ("recsys_lib.ir.types", "SerializerInterface"),
    *[("recsys_lib.pt2.checks", n) for n in (
        "guard_or_false", "guard_or_true", "set_use_torchdynamo_compiling_path", "get_use_torchdynamo_compiling_path")],
]

SIGNATURES = [
    ("recsys_lib.fx.tracer", "Tracer", [("leaf_modules", None)]),
    ("recsys_lib.fx.tracer", "Tracer.trace", [("self", REQUIRED), ("root", REQUIRED), ("concrete_args", None)]),
    ("recsys_lib.fx.tracer", "symbolic_trace", [("root", REQUIRED), ("concrete_args", None), ("leaf_modules", None)]),
    ("recsys_lib.ir.utils", "encapsulate_ir_modules", [("module", REQUIRED), ("serializer", SerializerInterface), ("fqn", "")]),
    ("recsys_lib.ir.utils", "decapsulate_ir_modules", [
        ("module", REQUIRED), ("serializer", SerializerInterface), ("device", None), ("finalize_interpreter_modules", False),
        ("short_circuit_pytree_ebc_regroup", False)]),
    ("recsys_lib.ir.utils", "mark_dynamic_kjt", [
        ("kjt", REQUIRED), ("shapes_collection", None), ("variable_length", False), ("variable_batch", False),
        ("vlen", None), ("llen", None)]),
]
