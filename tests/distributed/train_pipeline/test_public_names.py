"""The train-pipeline names at TorchRec 1.8.0's paths, with its parameter names in order (T0, no process group).

The table was read from TorchRec 1.8.0 with ``inspect.signature`` (None: not checked, e.g. enums and ABCs).
"""

import importlib
import inspect

import pytest

SIGNATURES = {'backward_injection.FirstGradTensorFinder': ['use_input'],
 'backward_injection.InjectionSite': ['fqn', 'tensor_finder', 'target_type', 'hook_position'],
 'backward_injection.InjectionTargetType': None,
 'backward_injection.OutputDistTensorFinder': ['sharding_type'],
 'backward_injection.register_backward_hook': ['site', 'model', 'hook_fn'],
 'gradient_accumulation.GradientAccumulationConfig': ['is_enabled', 'num_steps', 'num_warmup_steps'],
 'gradient_accumulation.GradientAccumulationWrapper': ['pipeline', 'optimizer', 'model', 'config'],
 'pipeline_context.CPUEmbeddingTrainPipelineContext': ['input_dist_splits_requests', 'input_dist_tensors_requests',
                                                       'module_contexts', 'module_contexts_next_batch',
                                                       'fused_splits_awaitables', 'events', 'postproc_fwd_results',
                                                       'index', 'version', 'embedding_a2a_requests',
                                                       'embedding_tensors', 'embedding_features',
                                                       'detached_embedding_tensors', 'dense_gpu_device',
                                                       'gpu_embedding_outputs'],
 'pipeline_context.EmbeddingTrainPipelineContext': ['input_dist_splits_requests', 'input_dist_tensors_requests',
                                                    'module_contexts', 'module_contexts_next_batch',
                                                    'fused_splits_awaitables', 'events', 'postproc_fwd_results',
                                                    'index', 'version', 'embedding_a2a_requests',
                                                    'embedding_tensors', 'embedding_features',
                                                    'detached_embedding_tensors'],
 'pipeline_context.PrefetchTrainPipelineContext': ['input_dist_splits_requests', 'input_dist_tensors_requests',
                                                   'module_contexts', 'module_contexts_next_batch',
                                                   'fused_splits_awaitables', 'events', 'postproc_fwd_results',
                                                   'index', 'version', 'module_input_post_prefetch',
                                                   'module_contexts_post_prefetch',
                                                   'module_input_post_prefetch_next_batch',
                                                   'module_contexts_post_prefetch_next_batch'],
 'pipeline_context.TrainPipelineContext': ['input_dist_splits_requests', 'input_dist_tensors_requests',
                                           'module_contexts', 'module_contexts_next_batch',
                                           'fused_splits_awaitables', 'events', 'postproc_fwd_results', 'index',
                                           'version'],
 'pipeline_stage.PipelineStage': ['name', 'runnable', 'stream', 'fill_callback', 'data_exhausted_callback'],
 'pipeline_stage.SparseDataDistUtil': ['model', 'data_dist_stream', 'apply_jit', 'prefetch_stream',
                                       'pipeline_postproc', 'embedding_lookup_stream'],
 'postproc.NoOpStream': ['stream'],
 'postproc.PipelinedPostproc': ['postproc_module', 'fqn', 'args', 'context', 'default_stream', 'dist_stream'],
 'runtime_forwards.BaseForward': ['name', 'args', 'module', 'context', 'stream'],
 'runtime_forwards.CPUEmbeddingPipelinedForward': ['name', 'args', 'module', 'context', 'stream'],
 'runtime_forwards.EmbeddingPipelinedForward': ['name', 'args', 'module', 'context', 'stream'],
 'runtime_forwards.InSyncEmbeddingPipelinedForward': ['name', 'args', 'module', 'context', 'stream'],
 'runtime_forwards.KJTAllToAllForward': ['pg', 'splits', 'stagger'],
 'runtime_forwards.PipelinedForward': ['name', 'args', 'module', 'context', 'stream'],
 'runtime_forwards.PrefetchEmbeddingPipelinedForward': ['name', 'args', 'module', 'context', 'prefetch_stream'],
 'runtime_forwards.PrefetchPipelinedForward': ['name', 'args', 'module', 'context', 'prefetch_stream'],
 'tracing.ArgInfoStepFactory': None,
 'tracing.DictArgInfoStep': ['value'],
 'tracing.GetAttrArgInfoStep': ['attr_name'],
 'tracing.GetItemArgInfoStep': ['item_index'],
 'tracing.ListArgInfoStep': ['value'],
 'tracing.NodeArgsHelper': ['model', 'context', 'pipeline_postproc', 'default_stream', 'dist_stream'],
 'tracing.NoopArgInfoStep': None,
 'tracing.PostprocArgInfoStep': ['postproc_module'],
 'tracing.ScalarArgInfoStep': ['value'],
 'tracing.Tracer': ['leaf_modules', 'extend_leaf_fqn'],
 'train_pipelines.EvalPipelineFusedSparseDist': ['args', 'enable_embedding_lookup_prefetch', 'kwargs'],
 'train_pipelines.EvalPipelineSparseDist': ['model', 'optimizer', 'device', 'apply_jit', 'pipeline_postproc',
                                            'enable_inplace_copy_batch', 'free_features_storage_early',
                                            'clear_data_dist_inputs'],
 'train_pipelines.PrefetchTrainPipelineSparseDist': ['model', 'optimizer', 'device', 'execute_all_batches',
                                                     'apply_jit', 'pipeline_postproc', 'custom_model_fwd',
                                                     'enable_inplace_copy_batch', 'free_features_storage_early',
                                                     'clear_data_dist_inputs'],
 'train_pipelines.StagedTrainPipeline': ['pipeline_stages', 'debug_mode', 'compute_stream', 'on_flush_end'],
 'train_pipelines.TorchCompileConfig': ['fullgraph', 'dynamic', 'backend', 'compile_on_iter'],
 'train_pipelines.TrainPipeline': None,
 'train_pipelines.TrainPipelineBase': ['model', 'optimizer', 'device', 'custom_model_fwd',
                                       'enable_inplace_copy_batch'],
 'train_pipelines.TrainPipelineFusedSparseDist': ['model', 'optimizer', 'device', 'execute_all_batches',
                                                  'apply_jit', 'pipeline_postproc', 'custom_model_fwd', 'strict',
                                                  'emb_lookup_stream', 'embedding_lookup_after_data_dist',
                                                  'enable_inplace_copy_batch', 'enqueue_batch_after_forward',
                                                  'free_features_storage_early', 'clear_data_dist_inputs'],
 'train_pipelines.TrainPipelinePT2': ['model', 'optimizer', 'device', 'compile_configs', 'pre_compile_fn',
                                      'post_compile_fn', 'input_transformer'],
 'train_pipelines.TrainPipelineSemiSync': ['model', 'optimizer', 'device', 'execute_all_batches', 'apply_jit',
                                           'start_batch', 'stash_gradients', 'pipeline_postproc',
                                           'custom_model_fwd', 'strict', 'dmp_collection_sync_interval_batches',
                                           'enable_inplace_copy_batch', 'free_features_storage_early',
                                           'clear_data_dist_inputs'],
 'train_pipelines.TrainPipelineSparseDist': ['model', 'optimizer', 'device', 'execute_all_batches', 'apply_jit',
                                             'context_type', 'pipeline_postproc', 'custom_model_fwd',
                                             'dmp_collection_sync_interval_batches', 'enqueue_batch_after_forward',
                                             'enable_inplace_copy_batch', 'free_features_storage_early',
                                             'clear_data_dist_inputs'],
 'train_pipelines.TrainPipelineSparseDistCompAutograd': ['model', 'optimizer', 'device', 'execute_all_batches',
                                                         'apply_jit', 'context_type', 'pipeline_postproc',
                                                         'custom_model_fwd', 'free_features_storage_early',
                                                         'clear_data_dist_inputs'],
 'train_pipelines.TrainPipelineSparseDistLite': ['model', 'optimizer', 'device', 'apply_jit', 'context_type',
                                                 'pipeline_postproc', 'custom_model_fwd',
                                                 'enable_inplace_copy_batch', 'free_features_storage_early',
                                                 'clear_data_dist_inputs'],
 'types.ArgInfo': ['steps'],
 'types.BaseArgInfoStep': None,
 'types.CallArgs': ['args', 'kwargs'],
 'types.PipelinePhase': None,
 'types.PipelineState': None,
 'utils.DataLoadingThread': ['device', 'dataloader_iter', 'to_device_non_blocking', 'memcpy_stream_priority',
                             'memcpy_stream'],
 'utils.FutureDeque': ['args', 'kwargs'],
 'utils._jit_modules': ['module', 'path', 'optional'],
 'utils._override_input_dist_forwards': ['pipelined_modules'],
 'utils._pipeline_detach_model': ['model', 'pipelined_modules', 'original_forwards', 'original_kjt_dist_forwards',
                                  'pipelined_postprocs'],
 'utils._prefetch_embeddings': ['batch', 'context', 'pipelined_modules', 'device', 'stream_context',
                                'data_dist_stream', 'default_stream'],
 'utils._rewrite_model': ['model', 'context', 'dist_stream', 'batch', 'apply_jit', 'pipelined_forward',
                          'pipeline_postproc', 'default_stream'],
 'utils._start_data_dist': ['pipelined_modules', 'batch', 'context'],
 'utils._start_embedding_lookup': ['module', 'context', 'source_stream', 'target_stream', 'stream_context'],
 'utils._to_device': ['batch', 'device', 'non_blocking', 'data_copy_stream'],
 'utils._wait_for_batch': ['batch', 'stream', 'record_stream'],
 'utils._wait_for_events': ['batch', 'context', 'stream'],
 'utils.get_h2d_func': ['batch', 'device'],
 'utils.use_context_for_postprocs': ['pipelined_postprocs', 'next_batch_context']}


@pytest.mark.parametrize("path", sorted(SIGNATURES))
def test_name_exists_with_torchrec_parameters(path):
    module, name = path.rsplit(".", 1)
    value = getattr(importlib.import_module(f"recsys_lib.distributed.train_pipeline.{module}"), name)
    expected = SIGNATURES[path]
    if expected is None:
        return
    fn = value.__init__ if inspect.isclass(value) else value
    assert [p for p in inspect.signature(fn).parameters if p != "self"] == expected, path


def test_package_and_distributed_reexports():
    import recsys_lib.distributed as d
    from recsys_lib.distributed import train_pipeline as tp

    for name in ["TrainPipeline", "TrainPipelineBase", "TrainPipelineSparseDist", "EvalPipelineSparseDist",
                 "PrefetchTrainPipelineSparseDist", "DataLoadingThread"]:
        assert getattr(d, name) is getattr(tp, name)
        assert getattr(tp, name).__module__.startswith("recsys_lib.distributed.train_pipeline.")
    for name in ["ArgInfo", "ArgInfoStepFactory", "CallArgs", "GradientAccumulationConfig", "GradientAccumulationWrapper",
                 "SparseDataDistUtil", "StagedTrainPipeline", "TorchCompileConfig", "Tracer", "TrainPipelineContext",
                 "TrainPipelineFusedSparseDist", "TrainPipelinePT2", "TrainPipelineSparseDistCompAutograd",
                 "_override_input_dist_forwards", "_rewrite_model", "_start_data_dist", "_to_device", "_wait_for_batch"]:
        assert hasattr(tp, name), name
    assert tp.TrainPipelineSparseDist.__module__ == "recsys_lib.distributed.train_pipeline.train_pipelines"
