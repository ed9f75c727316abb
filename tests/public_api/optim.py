from recsys_lib.optim.clipping import GradientClipping
from recsys_lib.optim.warmup import WarmupPolicy
from tests.public_api import REQUIRED

_OPTIM_NAMES = [
    "KeyedOptimizer", "CombinedOptimizer", "KeyedOptimizerWrapper", "OptimizerWrapper",
    "FusedOptimizer", "EmptyFusedOptimizer", "FusedOptimizerModule",
    "WarmupOptimizer", "WarmupPolicy", "WarmupStage",
    "GradientClipping", "GradientClippingOptimizer",
    "RowWiseAdagrad", "SemisyncOptimizer",
    "SGD", "LarsSGD", "LAMB", "PartialRowWiseLAMB", "Adam", "PartialRowWiseAdam", "Adagrad",
    "in_backward_optimizer_filter", "apply_optimizer_in_backward",
]

NAMES = [("recsys_lib.optim", n) for n in _OPTIM_NAMES] + [
    ("recsys_lib.optim.keyed", "KeyedOptimizer"),
    ("recsys_lib.optim.keyed", "CombinedOptimizer"),
    ("recsys_lib.optim.keyed", "KeyedOptimizerWrapper"),
    ("recsys_lib.optim.keyed", "OptimizerWrapper"),
    ("recsys_lib.optim.fused", "FusedOptimizer"),
    ("recsys_lib.optim.fused", "EmptyFusedOptimizer"),
    ("recsys_lib.optim.fused", "FusedOptimizerModule"),
    ("recsys_lib.optim.warmup", "WarmupOptimizer"),
    ("recsys_lib.optim.warmup", "WarmupPolicy"),
    ("recsys_lib.optim.warmup", "WarmupStage"),
    ("recsys_lib.optim.clipping", "GradientClipping"),
    ("recsys_lib.optim.clipping", "GradientClippingOptimizer"),
    ("recsys_lib.optim.rowwise_adagrad", "RowWiseAdagrad"),
    ("recsys_lib.optim.rowwise_adagrad", "adagrad"),
    ("recsys_lib.optim.semi_sync", "SemisyncOptimizer"),
    ("recsys_lib.optim.optimizers", "SGD"),
    ("recsys_lib.optim.optimizers", "LarsSGD"),
    ("recsys_lib.optim.optimizers", "LAMB"),
    ("recsys_lib.optim.optimizers", "PartialRowWiseLAMB"),
    ("recsys_lib.optim.optimizers", "Adam"),
    ("recsys_lib.optim.optimizers", "PartialRowWiseAdam"),
    ("recsys_lib.optim.optimizers", "Adagrad"),
    ("recsys_lib.optim.optimizers", "in_backward_optimizer_filter"),
    ("recsys_lib.optim.apply_optimizer_in_backward", "apply_optimizer_in_backward"),
]

SIGNATURES = [
    # ★ pinned by TorchRec
    ("recsys_lib.optim.keyed", "KeyedOptimizer",
     [("params", REQUIRED), ("state", REQUIRED), ("param_groups", REQUIRED)]),
    ("recsys_lib.optim.keyed", "KeyedOptimizer.init_state",
     [("self", REQUIRED), ("sparse_grad_parameter_names", None)]),
    ("recsys_lib.optim.keyed", "KeyedOptimizer.save_param_groups", [("self", REQUIRED), ("save", REQUIRED)]),
    ("recsys_lib.optim.keyed", "KeyedOptimizer.load_state_dict", [("self", REQUIRED), ("state_dict", REQUIRED)]),
    ("recsys_lib.optim.keyed", "KeyedOptimizer.add_param_group", [("self", REQUIRED), ("param_group", REQUIRED)]),
    ("recsys_lib.optim.keyed", "CombinedOptimizer", [("optims", REQUIRED)]),
    ("recsys_lib.optim.keyed", "CombinedOptimizer.prepend_opt_key", [("name", REQUIRED), ("opt_key", REQUIRED)]),
    ("recsys_lib.optim.keyed", "CombinedOptimizer.step", [("self", REQUIRED), ("closure", None)]),
    ("recsys_lib.optim.keyed", "CombinedOptimizer.zero_grad", [("self", REQUIRED), ("set_to_none", False)]),
    ("recsys_lib.optim.keyed", "CombinedOptimizer.set_optimizer_step", [("self", REQUIRED), ("step", REQUIRED)]),
    ("recsys_lib.optim.keyed", "CombinedOptimizer.update_hyper_parameters",
     [("self", REQUIRED), ("params_dict", REQUIRED)]),
    # other CORE signatures
    ("recsys_lib.optim.keyed", "KeyedOptimizerWrapper",
     [("params", REQUIRED), ("optim_factory", REQUIRED), ("pass_params_dict", False)]),
    ("recsys_lib.optim.keyed", "OptimizerWrapper", [("optimizer", REQUIRED)]),
    ("recsys_lib.optim.fused", "EmptyFusedOptimizer", []),
    ("recsys_lib.optim.fused", "FusedOptimizer.step", [("self", REQUIRED), ("closure", None)]),
    ("recsys_lib.optim.fused", "FusedOptimizer.zero_grad", [("self", REQUIRED), ("set_to_none", False)]),
    ("recsys_lib.optim.warmup", "WarmupStage",
     [("policy", WarmupPolicy.LINEAR), ("max_iters", 1), ("value", 1.0), ("lr_scale", 1.0), ("decay_iters", -1),
      ("sgdr_period", 1)]),
    ("recsys_lib.optim.warmup", "WarmupOptimizer",
     [("optimizer", REQUIRED), ("stages", REQUIRED), ("lr", 0.1), ("lr_param", "lr"), ("param_name", "__warmup")]),
    ("recsys_lib.optim.clipping", "GradientClippingOptimizer",
     [("optimizer", REQUIRED), ("clipping", GradientClipping.NONE), ("max_gradient", 0.1), ("norm_type", 2.0),
      ("enable_global_grad_clip", False), ("param_to_pgs", None)]),
    ("recsys_lib.optim.rowwise_adagrad", "RowWiseAdagrad",
     [("params", REQUIRED), ("lr", 1e-2), ("lr_decay", 0.0), ("weight_decay", 0.0),
      ("initial_accumulator_value", 0.0), ("eps", 1e-10)]),
    ("recsys_lib.optim.rowwise_adagrad", "adagrad",
     [("params", REQUIRED), ("grads", REQUIRED), ("state_sums", REQUIRED), ("state_steps", REQUIRED),
      ("lr", REQUIRED), ("weight_decay", REQUIRED), ("lr_decay", REQUIRED), ("eps", REQUIRED), ("maximize", REQUIRED)]),
    ("recsys_lib.optim.optimizers", "in_backward_optimizer_filter",
     [("named_parameters", REQUIRED), ("include", False)]),
    ("recsys_lib.optim.apply_optimizer_in_backward", "apply_optimizer_in_backward",
     [("optimizer_class", REQUIRED), ("params", REQUIRED), ("optimizer_kwargs", REQUIRED)]),
]

SIGNATURES += [
    ("recsys_lib.optim.clipping", "GradientClippingOptimizer.compute_total_grad_norm", [("self", REQUIRED)]),
    ("recsys_lib.optim.rowwise_adagrad", "RowWiseAdagrad.share_memory", [("self", REQUIRED)]),
]
