"""Sharded managed collision, sharded pools and the model delta tracker (issue 15 phase 2): TorchRec 1.8.0's
`torchrec.distributed.{mc_*, *pool*, tensor_sharding, sharding.rw_*pool_sharding, model_tracker}`.

Not listed (see docs/deviations.md): the inference pools (`ShardedInference*Pool`, `InferRw*`,
`InferObjectPoolSharding`) and the replicated row-wise pool sharding.
"""

import torch

from recsys_lib.distributed.model_tracker.types import TrackingMode, UpdateMode
from tests.public_api import REQUIRED

_D = "recsys_lib.distributed"

NAMES = [
    *[(_D + '.mc_modules', n) for n in ['ShardedManagedCollisionCollection', 'ManagedCollisionCollectionSharder', 'ManagedCollisionCollectionContext']],
    *[(_D + '.mc_embedding_modules', n) for n in ['BaseShardedManagedCollisionEmbeddingCollection', 'BaseManagedCollisionEmbeddingCollectionSharder']],
    *[(_D + '.mc_embedding', n) for n in ['ShardedManagedCollisionEmbeddingCollection', 'ManagedCollisionEmbeddingCollectionSharder', 'ManagedCollisionEmbeddingCollectionContext']],
    *[(_D + '.mc_embeddingbag', n) for n in ['ShardedManagedCollisionEmbeddingBagCollection', 'ManagedCollisionEmbeddingBagCollectionSharder', 'ManagedCollisionEmbeddingBagCollectionContext']],
    *[(_D + '.object_pool', n) for n in ['ShardedObjectPool']],
    *[(_D + '.tensor_pool', n) for n in ['ShardedTensorPool', 'TensorPoolSharder', 'TensorPoolAwaitable']],
    *[(_D + '.keyed_jagged_tensor_pool', n) for n in ['ShardedKeyedJaggedTensorPool', 'KeyedJaggedTensorPoolSharder', 'KeyedJaggedTensorPoolAwaitable']],
    *[(_D + '.tensor_sharding', n) for n in ['ObjectPoolShardingContext', 'RwShardingContext', 'ObjectPoolRwShardingContext', 'ObjectPoolReplicatedRwShardingContext', 'TensorPoolRwShardingContext', 'ObjectPoolSharding']],
    *[(_D + '.sharding.rw_pool_sharding', n) for n in ['RwObjectPoolIDsDist']],
    *[(_D + '.sharding.rw_tensor_pool_sharding', n) for n in ['RwTensorPoolValuesDist', 'TensorPoolRwSharding']],
    *[(_D + '.sharding.rw_kjt_pool_sharding', n) for n in ['RwKeyedJaggedTensorPoolLookupValuesDist', 'RwKeyedJaggedTensorPoolUpdateValuesDist', 'KeyedJaggedTensorPoolRwSharding']],
    *[(_D + '.types', n) for n in ['ObjectPoolShardingType', 'ObjectPoolShardingPlan']],
    *[(_D + '.model_tracker', n) for n in ['DeltaStore', 'ModelDeltaTracker', 'SUPPORTED_MODULES', 'IndexedLookup', 'ModelTrackerConfigs', 'Trackers', 'TrackingMode', 'UniqueRows', 'UpdateMode']],
    *[(_D + '.model_tracker.types', n) for n in ['IndexedLookup', 'RawIndexedLookup', 'UniqueRows', 'TrackingMode', 'UpdateMode', 'Trackers', 'RawIdTrackerConfig', 'DeltaTrackerConfig', 'ModelTrackerConfigs']],
    *[(_D + '.model_tracker.delta_store', n) for n in ['DeltaStore', 'DeltaStoreTrec']],
    *[(_D + '.model_tracker.model_delta_tracker', n) for n in ['ModelDeltaTracker', 'ModelDeltaTrackerTrec', 'SUPPORTED_MODULES', 'UPDATE_MODE_MAP']],
    *[(_D + '.model_tracker.delta_store', n) for n in ['RawIdTrackerStore']],
    *[(_D + '.model_tracker.trackers', n) for n in ['RawIdTracker']],
    *[(_D + '.model_tracker.trackers.raw_id_tracker', n) for n in ['RawIdTracker', 'SUPPORTED_TRACKING_MODULES', 'MANAGED_COLLISION_WRAPPER_MODULES']],
    *[(_D + '.embedding_kernel', n) for n in ['RawIdTrackerWrapper', 'BaseEmbedding']],
    *[(_D + '.mc_modules', n) for n in ['EmbeddingCollectionContext', 'ManagedCollisionCollectionAwaitable', 'ShardedMCCRemapper', 'create_mc_sharding', 'input_dist_permute', 'update_jagged_tensor_dict']],
    ('recsys_lib.quant.embedding_modules', 'QuantManagedCollisionEmbeddingCollection'),
    *[(_D + '.mc_modules', n) for n in ['ShardedQuantManagedCollisionCollection', 'InferManagedCollisionCollectionSharder']],
    *[(_D + '.quant_embedding', n) for n in ['ShardedQuantManagedCollisionEmbeddingCollection', 'QuantManagedCollisionEmbeddingCollectionSharder', 'ShardedMCECLookup', 'ManagedCollisionEmbeddingCollectionContext']],
    *[(_D + '.quant_embeddingbag', n) for n in ['ShardedQuantManagedCollisionEmbeddingBagCollection', 'QuantManagedCollisionEmbeddingBagCollectionSharder', 'ShardedMCEBCLookup']],
    ('recsys_lib.quant.embedding_modules', 'QuantManagedCollisionEmbeddingBagCollection'),
    *[('recsys_lib.modules.object_pool_lookups', n) for n in ['UVMCachingInt64Lookup', 'UVMCachingInt32Lookup', 'UVMCachingFloatLookup']],
]

SIGNATURES = [
    (_D + '.model_tracker.trackers.raw_id_tracker', 'RawIdTracker', [('model', REQUIRED), ('delete_on_read', True), ('fqns_to_skip', ())]),
    (_D + '.model_tracker.trackers.raw_id_tracker', 'RawIdTracker.get_indexed_lookups', [('self', REQUIRED), ('tables', REQUIRED), ('consumer', None)]),
    (_D + '.model_tracker.model_delta_tracker', 'ModelDeltaTrackerTrec.record_momentum', [('self', REQUIRED), ('emb_module', REQUIRED), ('kjt', REQUIRED)]),
    (_D + '.model_tracker.model_delta_tracker', 'ModelDeltaTrackerTrec.record_rowwise_optim_state', [('self', REQUIRED), ('emb_module', REQUIRED), ('kjt', REQUIRED)]),
    (_D + '.embedding_kernel', 'BaseEmbedding.init_raw_id_tracker', [('self', REQUIRED), ('get_indexed_lookups', REQUIRED), ('delete', REQUIRED)]),
    (_D + '.mc_modules', 'ShardedManagedCollisionCollection.get_lookup_value', [('self', REQUIRED), ('table', REQUIRED), ('features', REQUIRED), ('write_weights', None)]),
    (_D + '.mc_modules', 'create_mc_sharding', [('sharding_type', REQUIRED), ('sharding_infos', REQUIRED), ('env', REQUIRED), ('device', None)]),
    ('recsys_lib.modules.hash_mc_modules', 'HashZchManagedCollisionModule.sync_identities', [('self', REQUIRED), ('is_root_node', REQUIRED), ('num_replica_gp', REQUIRED), ('replica_ranks', REQUIRED), ('replica_pg', REQUIRED)]),
    (_D + '.mc_embedding_modules', 'BaseShardedManagedCollisionEmbeddingCollection.sync_hash_zch_weights', [('self', REQUIRED), ('table_name', REQUIRED), ('rank_to_global', REQUIRED), ('survived', REQUIRED), ('include_optimizer_state', REQUIRED), ('allreduce_fn', REQUIRED), ('indices_slots', None)]),
    ('recsys_lib.quant.embedding_modules', 'QuantManagedCollisionEmbeddingCollection', [('tables', REQUIRED), ('device', REQUIRED), ('need_indices', False), ('output_dtype', torch.float), ('table_name_to_quantized_weights', None), ('register_tbes', False), ('quant_state_dict_split_scale_bias', False), ('row_alignment', 16), ('managed_collision_collection', None), ('return_remapped_features', False), ('cache_features_order', False)]),
    (_D + '.mc_modules', 'ShardedManagedCollisionCollection', [('module', REQUIRED), ('table_name_to_parameter_sharding', REQUIRED), ('env', REQUIRED), ('device', REQUIRED), ('embedding_shardings', REQUIRED), ('qcomm_codecs_registry', None), ('use_index_dedup', False)]),
    (_D + '.mc_modules', 'ManagedCollisionCollectionSharder', [('qcomm_codecs_registry', None)]),
    (_D + '.mc_modules', 'ManagedCollisionCollectionSharder.shard', [('self', REQUIRED), ('module', REQUIRED), ('params', REQUIRED), ('env', REQUIRED), ('embedding_shardings', REQUIRED), ('device', None), ('use_index_dedup', False)]),
    (_D + '.mc_modules', 'ShardedManagedCollisionCollection.input_dist', [('self', REQUIRED), ('ctx', REQUIRED), ('features', REQUIRED), ('skip_permute', False)]),
    (_D + '.mc_modules', 'ShardedManagedCollisionCollection.evict', [('self', REQUIRED)]),
    (_D + '.mc_modules', 'ShardedManagedCollisionCollection.open_slots', [('self', REQUIRED)]),
    (_D + '.mc_embedding_modules', 'BaseShardedManagedCollisionEmbeddingCollection', [('module', REQUIRED), ('table_name_to_parameter_sharding', REQUIRED), ('e_sharder', REQUIRED), ('mc_sharder', REQUIRED), ('env', REQUIRED), ('device', REQUIRED)]),
    (_D + '.mc_embedding_modules', 'BaseManagedCollisionEmbeddingCollectionSharder', [('e_sharder', REQUIRED), ('mc_sharder', REQUIRED), ('qcomm_codecs_registry', None)]),
    (_D + '.mc_embedding', 'ShardedManagedCollisionEmbeddingCollection', [('module', REQUIRED), ('table_name_to_parameter_sharding', REQUIRED), ('ec_sharder', REQUIRED), ('mc_sharder', REQUIRED), ('env', REQUIRED), ('device', REQUIRED)]),
    (_D + '.mc_embedding', 'ManagedCollisionEmbeddingCollectionSharder', [('ec_sharder', None), ('mc_sharder', None), ('fused_params', None), ('qcomm_codecs_registry', None)]),
    (_D + '.mc_embedding', 'ManagedCollisionEmbeddingCollectionSharder.shard', [('self', REQUIRED), ('module', REQUIRED), ('params', REQUIRED), ('env', REQUIRED), ('device', None), ('module_fqn', None)]),
    (_D + '.mc_embeddingbag', 'ShardedManagedCollisionEmbeddingBagCollection', [('module', REQUIRED), ('table_name_to_parameter_sharding', REQUIRED), ('ebc_sharder', REQUIRED), ('mc_sharder', REQUIRED), ('env', REQUIRED), ('device', REQUIRED)]),
    (_D + '.mc_embeddingbag', 'ManagedCollisionEmbeddingBagCollectionSharder', [('ebc_sharder', None), ('mc_sharder', None), ('fused_params', None), ('qcomm_codecs_registry', None)]),
    (_D + '.mc_embeddingbag', 'ManagedCollisionEmbeddingBagCollectionSharder.shard', [('self', REQUIRED), ('module', REQUIRED), ('params', REQUIRED), ('env', REQUIRED), ('device', None), ('module_fqn', None)]),
    (_D + '.tensor_pool', 'ShardedTensorPool', [('env', REQUIRED), ('pool_size', REQUIRED), ('dim', REQUIRED), ('dtype', REQUIRED), ('sharding_plan', REQUIRED), ('device', None), ('enable_uvm', False)]),
    (_D + '.tensor_pool', 'TensorPoolSharder.shard', [('self', REQUIRED), ('module', REQUIRED), ('plan', REQUIRED), ('env', REQUIRED), ('device', None), ('module_fqn', None)]),
    (_D + '.tensor_pool', 'TensorPoolAwaitable', [('awaitable', REQUIRED), ('unbucketize_permute', REQUIRED)]),
    (_D + '.keyed_jagged_tensor_pool', 'ShardedKeyedJaggedTensorPool', [('pool_size', REQUIRED), ('feature_max_lengths', REQUIRED), ('values_dtype', REQUIRED), ('is_weighted', REQUIRED), ('sharding_env', REQUIRED), ('sharding_plan', REQUIRED), ('device', None), ('enable_uvm', False)]),
    (_D + '.keyed_jagged_tensor_pool', 'KeyedJaggedTensorPoolSharder.shard', [('self', REQUIRED), ('module', REQUIRED), ('plan', REQUIRED), ('env', REQUIRED), ('device', None), ('module_fqn', None)]),
    (_D + '.keyed_jagged_tensor_pool', 'KeyedJaggedTensorPoolAwaitable', [('awaitable', REQUIRED), ('keys', REQUIRED), ('device', REQUIRED), ('unbucketize_permute', REQUIRED)]),
    (_D + '.sharding.rw_pool_sharding', 'RwObjectPoolIDsDist', [('pg', REQUIRED), ('is_update', True), ('bucketize_world_size', None), ('num_replicas', 1)]),
    (_D + '.sharding.rw_tensor_pool_sharding', 'RwTensorPoolValuesDist', [('pg', REQUIRED), ('is_update', REQUIRED)]),
    (_D + '.sharding.rw_tensor_pool_sharding', 'TensorPoolRwSharding', [('pool_size', REQUIRED), ('dim', REQUIRED), ('env', REQUIRED), ('device', REQUIRED)]),
    (_D + '.sharding.rw_kjt_pool_sharding', 'RwKeyedJaggedTensorPoolLookupValuesDist', [('num_features', REQUIRED), ('env', REQUIRED)]),
    (_D + '.sharding.rw_kjt_pool_sharding', 'RwKeyedJaggedTensorPoolUpdateValuesDist', [('num_features', REQUIRED), ('env', REQUIRED), ('device', REQUIRED), ('num_replicas', 1)]),
    (_D + '.sharding.rw_kjt_pool_sharding', 'KeyedJaggedTensorPoolRwSharding', [('env', REQUIRED), ('device', REQUIRED), ('pool_size', REQUIRED), ('num_features', REQUIRED)]),
    (_D + '.model_tracker.delta_store', 'DeltaStoreTrec', [('updateMode', UpdateMode.NONE)]),
    (_D + '.model_tracker.delta_store', 'DeltaStoreTrec.append', [('self', REQUIRED), ('batch_idx', REQUIRED), ('fqn', REQUIRED), ('ids', REQUIRED), ('states', None), ('raw_ids', None), ('runtime_meta', None)]),
    (_D + '.model_tracker.delta_store', 'DeltaStoreTrec.compact', [('self', REQUIRED), ('start_idx', REQUIRED), ('end_idx', REQUIRED)]),
    (_D + '.model_tracker.delta_store', 'DeltaStoreTrec.get_unique', [('self', REQUIRED), ('from_idx', 0)]),
    (_D + '.model_tracker.model_delta_tracker', 'ModelDeltaTrackerTrec', [('model', REQUIRED), ('consumers', None), ('delete_on_read', True), ('auto_compact', False), ('mode', TrackingMode.ID_ONLY), ('fqns_to_skip', ())]),
    (_D + '.model_tracker.model_delta_tracker', 'ModelDeltaTrackerTrec.get_unique', [('self', REQUIRED), ('consumer', None), ('top_percentage', 1.0), ('per_table_percentage', None), ('sorted_by_indices', True)]),
    (_D + '.model_tracker.model_delta_tracker', 'ModelDeltaTrackerTrec.get_unique_ids', [('self', REQUIRED), ('consumer', None)]),
    (_D + '.model_tracker.model_delta_tracker', 'ModelDeltaTrackerTrec.record_lookup', [('self', REQUIRED), ('kjt', REQUIRED), ('states', REQUIRED), ('emb_module', None), ('raw_ids', None)]),
    (_D + '.model_tracker.types', 'DeltaTrackerConfig', [('tracking_mode', TrackingMode.ID_ONLY), ('consumers', None), ('delete_on_read', True), ('auto_compact', False)]),
    (_D + '.model_parallel', 'DistributedModelParallel', [('module', REQUIRED), ('env', None), ('device', None), ('plan', None), ('sharders', None), ('init_data_parallel', True), ('init_parameters', True), ('data_parallel_wrapper', None), ('model_tracker_configs', None)]),
    (_D + '.model_parallel', 'DistributedModelParallel.init_torchrec_delta_tracker', [('self', REQUIRED), ('delta_tracker_config', REQUIRED)]),
    (_D + '.model_parallel', 'DistributedModelParallel.get_delta_tracker', [('self', REQUIRED)]),
]
