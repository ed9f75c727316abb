"""The test model zoo users write their own sharding tests with: TorchRec 1.8.0's
`torchrec.distributed.test_utils.test_model` (issue 12).

Every class of that module is listed.
"""

import torch

from recsys_lib.distributed.test_utils.test_model import TestMixedSequenceOverArch
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
