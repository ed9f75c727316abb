"""The test model zoo users write their own sharding tests with: TorchRec 1.8.0's
`torchrec.distributed.test_utils.test_model` (issue 12).

Every class of that module is listed.
"""

import torch

from recsys_lib.distributed.test_utils.test_model import ModelInput, TestMixedSequenceOverArch
from tests.public_api import REQUIRED

_M = "recsys_lib.distributed.test_utils.test_model"

NAMES = [(_M, n) for n in [
    "ModelInput", "TestDenseArch", "TestDHNArch", "TestOverArch", "TestOverArchRegroupModule", "TestOverArchLarge",
    "TestECSparseArch", "TestEBCSparseArch", "TestSparseNNBase", "TestSparseNN", "TestTowerInteraction",
    "TestTowerSparseNN", "TestTowerCollectionSparseNN", "TestPreprocNonWeighted", "TestPreprocWeighted",
    "TestModelWithPreproc", "TestModelWithPreprocCollectionArgs", "TestNegSamplingModule",
    "TestPositionWeightedPreprocModule", "TestEBCSparseArchZCH", "TestMixedSequenceOverArch",
    "TestMixedSequenceOverArchLargeActivation", "TestMixedEmbeddingSparseArch", "DENSE_LAYER_OUT_SIZE",
    "OVER_ARCH_OUT_SIZE",
]]

SIGNATURES = [
    (_M, 'ModelInput.generate', [('batch_size', REQUIRED), ('world_size', REQUIRED), ('num_float_features', REQUIRED), ('tables', REQUIRED), ('weighted_tables', REQUIRED), ('pooling_avg', 10), ('dedup_tables', None), ('variable_batch_size', False), ('tables_pooling', None), ('weighted_tables_pooling', None), ('randomize_indices', True), ('device', None), ('max_feature_lengths', None), ('input_type', 'kjt'), ('use_offsets', False), ('indices_dtype', torch.int64), ('offsets_dtype', torch.int64), ('lengths_dtype', torch.int64), ('random_seed', None), ('power_law_alpha', None)]),
    (_M, 'ModelInput.generate_variable_batch_input', [('average_batch_size', REQUIRED), ('world_size', REQUIRED), ('num_float_features', REQUIRED), ('tables', REQUIRED), ('weighted_tables', None), ('pooling_avg', 10), ('global_constant_batch', False), ('use_offsets', False), ('indices_dtype', torch.int64), ('offsets_dtype', torch.int64), ('lengths_dtype', torch.int64), ('random_seed', None)]),
    (_M, 'ModelInput.to', [('self', REQUIRED), ('device', REQUIRED), ('non_blocking', False), ('data_copy_stream', None)]),
    (_M, 'TestDenseArch', [('num_float_features', REQUIRED), ('device', None), ('dense_arch_out_size', None), ('dense_arch_hidden_sizes', None)]),
    (_M, 'TestDHNArch', [('in_features', REQUIRED), ('device', None), ('over_arch_out_size', None)]),
    (_M, 'TestOverArch', [('tables', REQUIRED), ('weighted_tables', REQUIRED), ('embedding_names', None), ('device', None), ('dense_arch_out_size', None), ('over_arch_out_size', None)]),
    (_M, 'TestOverArchRegroupModule', [('tables', REQUIRED), ('weighted_tables', REQUIRED), ('embedding_names', None), ('device', None), ('dense_arch_out_size', None), ('over_arch_out_size', None)]),
    (_M, 'TestOverArchLarge', [('tables', REQUIRED), ('weighted_tables', REQUIRED), ('embedding_names', None), ('device', None), ('dense_arch_out_size', None), ('over_arch_out_size', None), ('over_arch_hidden_layers', None), ('over_arch_hidden_repeat', None), ('skip_regroup', False)]),
    (_M, 'TestECSparseArch', [('tables', REQUIRED), ('device', None)]),
    (_M, 'TestEBCSparseArch', [('tables', REQUIRED), ('weighted_tables', REQUIRED), ('device', None), ('max_feature_lengths', None)]),
    (_M, 'TestSparseNNBase', [('tables', REQUIRED), ('weighted_tables', None), ('embedding_groups', None), ('dense_device', None), ('sparse_device', None)]),
    (_M, 'TestSparseNN', [('tables', REQUIRED), ('num_float_features', 10), ('weighted_tables', None), ('embedding_groups', None), ('dense_device', None), ('sparse_device', None), ('max_feature_lengths', None), ('feature_processor_modules', None), ('over_arch_clazz', None), ('postproc_module', None), ('zch_kwargs', None), ('submodule_kwargs', None)]),
    (_M, 'TestTowerInteraction', [('tables', REQUIRED), ('device', None)]),
    (_M, 'TestTowerSparseNN', [('tables', REQUIRED), ('num_float_features', 10), ('weighted_tables', None), ('embedding_groups', None), ('dense_device', None), ('sparse_device', None), ('feature_processor_modules', None)]),
    (_M, 'TestTowerCollectionSparseNN', [('tables', REQUIRED), ('num_float_features', 10), ('weighted_tables', None), ('embedding_groups', None), ('dense_device', None), ('sparse_device', None), ('feature_processor_modules', None)]),
    (_M, 'TestSparseNN.sparse_forward', [('self', REQUIRED), ('input', REQUIRED)]),
    (_M, 'TestSparseNN.dense_forward', [('self', REQUIRED), ('input', REQUIRED), ('sparse_output', REQUIRED)]),
    (_M, 'TestModelWithPreproc', [('tables', REQUIRED), ('weighted_tables', REQUIRED), ('device', REQUIRED), ('postproc_module', None), ('num_float_features', 10), ('run_postproc_inline', False)]),
    (_M, 'TestModelWithPreprocCollectionArgs', [('tables', REQUIRED), ('weighted_tables', REQUIRED), ('device', REQUIRED), ('postproc_module_outer', REQUIRED), ('postproc_module_nested', REQUIRED), ('num_float_features', 10)]),
    (_M, 'TestNegSamplingModule', [('extra_input', REQUIRED), ('has_params', False)]),
    (_M, 'TestPositionWeightedPreprocModule', [('max_feature_lengths', REQUIRED), ('device', REQUIRED)]),
    (_M, 'TestEBCSparseArchZCH', [('tables', REQUIRED), ('weighted_tables', REQUIRED), ('device', REQUIRED), ('zch_kwargs', REQUIRED), ('return_remapped', False)]),
    (_M, 'TestMixedSequenceOverArch', [('ebc_tables', REQUIRED), ('ec_tables', REQUIRED), ('weighted_tables', REQUIRED), ('device', None), ('max_sequence_length', None), ('dense_arch_out_size', None), ('over_arch_out_size', None)]),
    (_M, 'TestMixedSequenceOverArchLargeActivation', [('ebc_tables', REQUIRED), ('ec_tables', REQUIRED), ('weighted_tables', REQUIRED), ('device', None), ('max_sequence_length', None), ('dense_arch_out_size', None), ('over_arch_out_size', None), ('over_arch_hidden_layers', None), ('large_activation_dim', 4096)]),
    (_M, 'TestMixedEmbeddingSparseArch', [('tables', REQUIRED), ('num_float_features', 10), ('weighted_tables', None), ('embedding_groups', None), ('dense_device', None), ('sparse_device', None), ('feature_processor_modules', None), ('over_arch_clazz', TestMixedSequenceOverArch), ('device', None), ('enable_activation_stashing', False), ('dense_arch_hidden_sizes', None), ('over_arch_kwargs', None)]),
    (_M, 'TestMixedEmbeddingSparseArch.sparse_forward', [('self', REQUIRED), ('input', REQUIRED)]),
    (_M, 'TestMixedEmbeddingSparseArch.dense_forward', [('self', REQUIRED), ('input', REQUIRED), ('sparse_output', REQUIRED)]),
]

_S = "recsys_lib.distributed.test_utils.test_sharding"

NAMES += [(_S, n) for n in [
    "SharderType", "ModelInputCallable", "VariableBatchModelInputCallable", "create_test_sharder",
    "gen_model_and_input", "copy_state_dict", "alter_global_ebc_dtype", "create_device_mesh_for_2D",
    "gen_full_pred_after_one_step", "gen_full_model_pred_after_x_steps", "sharding_single_rank_test_single_process",
    "sharding_single_rank_test",
]] + [("recsys_lib.distributed.test_utils.emb_sharder", n) for n in ["TestETSharder", "TestETCSharder"]]

SIGNATURES += [
    (_S, "create_test_sharder", [("sharder_type", REQUIRED), ("sharding_type", REQUIRED), ("kernel_type", REQUIRED),
                                 ("fused_params", None), ("qcomms_config", None), ("device", None)]),
    (_S, "copy_state_dict", [("loc", REQUIRED), ("glob", REQUIRED), ("exclude_predfix", None)]),
    (_S, "gen_full_pred_after_one_step", [("model", REQUIRED), ("opt", REQUIRED), ("input", REQUIRED),
                                          ("skip_inference", False), ("skip_training", False)]),
    (_S, "gen_model_and_input", [("model_class", REQUIRED), ("tables", REQUIRED), ("embedding_groups", REQUIRED),
                                 ("world_size", REQUIRED), ("generate", ModelInput.generate), ("weighted_tables", None),
                                 ("num_float_features", 16), ("dense_device", None), ("sparse_device", None),
                                 ("dedup_feature_names", None), ("dedup_tables", None), ("variable_batch_size", False),
                                 ("batch_size", 4), ("feature_processor_modules", None), ("use_offsets", False),
                                 ("indices_dtype", torch.int64), ("offsets_dtype", torch.int64),
                                 ("lengths_dtype", torch.int64), ("global_constant_batch", False), ("num_inputs", 1),
                                 ("input_type", "kjt"), ("random_seed", None)]),
    (_S, "sharding_single_rank_test", [("rank", REQUIRED), ("world_size", REQUIRED), ("model_class", REQUIRED),
                                       ("embedding_groups", REQUIRED), ("tables", REQUIRED), ("sharders", REQUIRED),
                                       ("backend", REQUIRED), ("optim", REQUIRED), ("weighted_tables", None),
                                       ("constraints", None), ("local_size", None), ("pod_size", None),
                                       ("qcomms_config", None), ("apply_optimizer_in_backward_config", None),
                                       ("variable_batch_size", False), ("batch_size", 4)]),
    ("recsys_lib.distributed.test_utils.emb_sharder", "TestETSharder", [("sharding_type", REQUIRED),
     ("kernel_type", REQUIRED), ("fused_params", REQUIRED), ("qcomm_codecs_registry", None)]),
]
