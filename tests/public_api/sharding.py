"""Public names and signatures of the sharded modules, sharders, strategies and entry points (issue 4, items 5-7)."""

import dataclasses

from tests.public_api import REQUIRED

_FACTORY = dataclasses._HAS_DEFAULT_FACTORY  # a dataclass field with default_factory

_ES = "recsys_lib.distributed.embedding_sharding"
_EBC = "recsys_lib.distributed.embeddingbag"
_EC = "recsys_lib.distributed.embedding"
_FEBC = "recsys_lib.distributed.fused_embeddingbag"
_FEC = "recsys_lib.distributed.fused_embedding"
_SH = "recsys_lib.distributed.shard"
_MP = "recsys_lib.distributed.model_parallel"
_S = "recsys_lib.distributed.sharding"

NAMES = [
    *[(_ES, n) for n in (
        "EmbeddingSharding", "EmbeddingShardingInfo", "EmbeddingShardingContext", "BaseSparseFeaturesDist",
        "BaseEmbeddingDist", "group_tables", "bucketize_kjt_before_all2all", "KJTListSplitsAwaitable",
        "KJTListAwaitable", "FusedKJTListSplitsAwaitable", "ListOfKJTListAwaitable", "ListOfKJTListSplitsAwaitable",
        "CACHE_LOAD_FACTOR_STR", "USE_ONE_TBE_PER_TABLE")],
    *[(_EBC, n) for n in (
        "EmbeddingBagCollectionSharder", "ShardedEmbeddingBagCollection", "EmbeddingBagCollectionContext",
        "EmbeddingBagCollectionAwaitable", "construct_output_kt", "EmbeddingBagSharder", "ShardedEmbeddingBag",
        "VariableBatchEmbeddingBagCollectionAwaitable")],
    *[(_EC, n) for n in (
        "EmbeddingCollectionSharder", "ShardedEmbeddingCollection", "EmbeddingCollectionContext",
        "EmbeddingCollectionAwaitable")],
    (_FEBC, "FusedEmbeddingBagCollectionSharder"),
    (_FEBC, "ShardedFusedEmbeddingBagCollection"),
    (_FEC, "FusedEmbeddingCollectionSharder"),
    (_FEC, "ShardedFusedEmbeddingCollection"),
    (_SH, "shard"),
    (_SH, "shard_modules"),
    (_SH, "_shard_modules"),
    *[(_MP, n) for n in (
        "DistributedModelParallel", "DataParallelWrapper", "DefaultDataParallelWrapper", "get_module",
        "get_unwrapped_module", "get_default_sharders")],
    *[(f"{_S}.dp_sharding", n) for n in ("DpPooledEmbeddingSharding", "DpSparseFeaturesDist", "DpPooledEmbeddingDist")],
    *[(f"{_S}.tw_sharding", n) for n in ("TwPooledEmbeddingSharding", "TwSparseFeaturesDist", "TwPooledEmbeddingDist")],
    (f"{_S}.cw_sharding", "CwPooledEmbeddingSharding"),
    (f"{_S}.twcw_sharding", "TwCwPooledEmbeddingSharding"),
    (f"{_S}.dp_sequence_sharding", "DpSequenceEmbeddingSharding"),
    (f"{_S}.dp_sequence_sharding", "DpSequenceEmbeddingDist"),
    (f"{_S}.tw_sequence_sharding", "TwSequenceEmbeddingSharding"),
    (f"{_S}.tw_sequence_sharding", "TwSequenceEmbeddingDist"),
    (f"{_S}.cw_sequence_sharding", "CwSequenceEmbeddingSharding"),
]

SIGNATURES = [
    (_ES, "EmbeddingShardingInfo", [("embedding_config", REQUIRED), ("param_sharding", REQUIRED), ("param", REQUIRED),
                                    ("fused_params", None)]),
    (_ES, "EmbeddingShardingContext", [("batch_size_per_rank", _FACTORY), ("batch_size_per_rank_per_feature", _FACTORY),
                                       ("batch_size_per_feature_pre_a2a", _FACTORY),
                                       ("variable_batch_per_feature", False)]),
    (_ES, "bucketize_kjt_before_all2all", [
        ("kjt", REQUIRED), ("num_buckets", REQUIRED), ("block_sizes", REQUIRED), ("total_num_blocks", None),
        ("output_permute", False), ("bucketize_pos", False), ("block_bucketize_row_pos", None),
        ("keep_original_indices", False)]),
    (_EBC, "ShardedEmbeddingBagCollection", [
        ("module", REQUIRED), ("table_name_to_parameter_sharding", REQUIRED), ("env", REQUIRED),
        ("fused_params", None), ("device", None), ("qcomm_codecs_registry", None), ("module_fqn", None)]),
    (_EBC, "EmbeddingBagCollectionSharder", [("fused_params", None), ("qcomm_codecs_registry", None)]),
    (_EBC, "EmbeddingBagCollectionSharder.shard", [
        ("self", REQUIRED), ("module", REQUIRED), ("params", REQUIRED), ("env", REQUIRED), ("device", None),
        ("module_fqn", None)]),
    (_EBC, "EmbeddingBagCollectionContext", [("sharding_contexts", _FACTORY), ("inverse_indices", None),
                                             ("variable_batch_per_feature", False), ("divisor", None),
                                             ("early_releasable_inputs", _FACTORY)]),
    (_EBC, "EmbeddingBagCollectionAwaitable", [("awaitables", REQUIRED), ("embedding_dims", REQUIRED),
                                               ("embedding_names", REQUIRED), ("module_fqn", None),
                                               ("sharding_types", None), ("resize_awaitables", None)]),
    (_EBC, "construct_output_kt", [("embeddings", REQUIRED), ("embedding_names", REQUIRED),
                                   ("embedding_dims", REQUIRED)]),
    (_EC, "EmbeddingCollectionSharder", [("fused_params", None), ("qcomm_codecs_registry", None),
                                         ("use_index_dedup", False)]),
    (_EC, "ShardedEmbeddingCollection", [
        ("module", REQUIRED), ("table_name_to_parameter_sharding", REQUIRED), ("env", REQUIRED),
        ("fused_params", None), ("device", None), ("qcomm_codecs_registry", None), ("use_index_dedup", False),
        ("module_fqn", None)]),
    (_EC, "EmbeddingCollectionContext", [("sharding_contexts", _FACTORY), ("input_features", _FACTORY),
                                         ("reverse_indices", _FACTORY), ("seq_vbe_ctx", _FACTORY),
                                         ("table_name_to_unpruned_hash_sizes", _FACTORY),
                                         ("early_releasable_inputs", _FACTORY)]),
    (_EC, "EmbeddingCollectionAwaitable", [
        ("awaitables_per_sharding", REQUIRED), ("features_per_sharding", REQUIRED),
        ("embedding_names_per_sharding", REQUIRED), ("ctx", REQUIRED), ("need_indices", False),
        ("features_to_permute_indices", None), ("module_fqn", None), ("sharding_types", None),
        ("use_gather_select", False), ("use_gather_select_per_sharding", None), ("resize_awaitables", None)]),
    (_SH, "shard", [("module", REQUIRED), ("plan", REQUIRED), ("env", None), ("device", None), ("sharder", None)]),
    (_SH, "shard_modules", [("module", REQUIRED), ("env", None), ("device", None), ("plan", None),
                            ("sharders", None), ("init_params", False)]),
    (_SH, "_shard_modules", [("module", REQUIRED), ("env", None), ("device", None), ("plan", None),
                             ("sharders", None), ("init_params", False), ("planner", None)]),
    (_MP, "DistributedModelParallel", [
        ("module", REQUIRED), ("env", None), ("device", None), ("plan", None), ("sharders", None),
        ("init_data_parallel", True), ("init_parameters", True), ("data_parallel_wrapper", None)]),
    (_MP, "DistributedModelParallel.forward", [("self", REQUIRED)]),
    (_MP, "DistributedModelParallel.state_dict", [("self", REQUIRED), ("destination", None), ("prefix", ""),
                                                  ("keep_vars", False)]),
    (_MP, "DistributedModelParallel.load_state_dict", [("self", REQUIRED), ("state_dict", REQUIRED), ("prefix", ""),
                                                       ("strict", True)]),
    (_MP, "DistributedModelParallel.named_parameters", [("self", REQUIRED), ("prefix", ""), ("recurse", True),
                                                        ("remove_duplicate", True)]),
    (_MP, "DistributedModelParallel.copy", [("self", REQUIRED), ("device", REQUIRED)]),
    (_MP, "DefaultDataParallelWrapper", [
        ("bucket_cap_mb", 25), ("static_graph", True), ("find_unused_parameters", False),
        ("allreduce_comm_precision", None), ("params_to_ignore", None), ("ddp_kwargs", None)]),
    (_MP, "DataParallelWrapper.wrap", [("self", REQUIRED), ("dmp", REQUIRED), ("env", REQUIRED), ("device", REQUIRED)]),
    (_EBC, "ShardedEmbeddingBag", [("module", REQUIRED), ("table_name_to_parameter_sharding", REQUIRED),
                                   ("env", REQUIRED), ("fused_params", None), ("device", None)]),
    (_EBC, "EmbeddingBagSharder", [("fused_params", None), ("qcomm_codecs_registry", None),
                                   ("sharded_module_order_overwrite", None)]),
    (_EBC, "EmbeddingBagCollectionSharder", [("fused_params", None), ("qcomm_codecs_registry", None),
                                             ("sharded_module_order_overwrite", None)]),
    ("recsys_lib.distributed.model_parallel", "HybridEvalDMP", [("module", REQUIRED)]),
    (_EC, "pad_vbe_kjt_lengths", [("features", REQUIRED)]),
    (_ES, "bucketize_kjt_inference", [
        ("kjt", REQUIRED), ("num_buckets", REQUIRED), ("block_sizes", REQUIRED), ("total_num_buckets", None),
        ("bucketize_pos", False), ("block_bucketize_row_pos", None), ("is_sequence", False),
        ("keep_original_indices", False)]),
    (_ES, "bucketize_embeddings_before_all2all_write", [
        ("kjt", REQUIRED), ("num_buckets", REQUIRED), ("block_sizes", REQUIRED), ("total_num_blocks", None),
        ("output_permute", False), ("bucketize_pos", False), ("block_bucketize_row_pos", None),
        ("keep_original_indices", False)]),
]
