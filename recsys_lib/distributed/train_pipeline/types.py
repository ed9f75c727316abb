"""Value types of the train pipelines: how a sharded module's inputs are rebuilt from a batch, and phases.

A pipelined sharded module is called ahead of the model's forward with arguments *rebuilt from the batch*.
``ArgInfo`` records, for one argument, the steps that lead from the batch to it (read by fx tracing, see
``tracing.py``); ``CallArgs`` holds one ``ArgInfo`` per positional and keyword argument.

Example::

    # model.forward(batch): ... self.ebc(batch.sparse_features) ...
    info = ArgInfo([GetAttrArgInfoStep("sparse_features")])
    CallArgs(args=[info], kwargs={}).build_args_kwargs(batch)   # ([batch.sparse_features], {})
"""

import abc
from enum import Enum
from typing import Any, Dict, List, Tuple


class BaseArgInfoStep(abc.ABC):
    """One step from the batch towards an argument (attribute read, item read, constant, ...)."""

    @abc.abstractmethod
    def process(self, arg: Any) -> Any:
        """Applies this step to the value reached so far (the batch at first)."""


class ArgInfo:
    """The steps that turn the batch into one argument of a pipelined module.

    Args:
        steps: applied in order; an empty list means the batch itself.
    """

    def __init__(self, steps: List[BaseArgInfoStep]) -> None:
        self.steps = steps

    def add_step(self, step: BaseArgInfoStep) -> "ArgInfo":
        """Prepends ``step`` (tracing walks from the argument back to the batch)."""
        self.steps.insert(0, step)
        return self

    def append_step(self, step: BaseArgInfoStep) -> "ArgInfo":
        self.steps.append(step)
        return self

    def process_steps(self, arg: Any) -> Any:
        """The argument this info describes, computed from ``arg`` (the batch)."""
        if not self.steps:
            return None
        for step in self.steps:
            arg = step.process(arg)
        return arg

    def __repr__(self) -> str:
        return f"ArgInfo(steps={self.steps})"


class CallArgs:
    """Positional and keyword ``ArgInfo`` s of one call of a pipelined module."""

    def __init__(self, args: List[ArgInfo], kwargs: Dict[str, ArgInfo]) -> None:
        self.args = args
        self.kwargs = kwargs

    def build_args_kwargs(self, initial_input: Any) -> Tuple[List[Any], Dict[str, Any]]:
        """``(args, kwargs)`` for the module, rebuilt from ``initial_input`` (the batch)."""
        args = [info.process_steps(initial_input) for info in self.args]
        kwargs = {name: info.process_steps(initial_input) for name, info in self.kwargs.items()}
        return args, kwargs

    def __repr__(self) -> str:
        return f"CallArgs(args={self.args}, kwargs={self.kwargs})"


class PipelineState(Enum):
    """What the pipeline is doing now (used by backward hooks)."""

    IDLE = 0
    CALL_FWD = 1
    CALL_BWD = 2
    UNKNOWN = 3

    def __str__(self) -> str:
        return self.name


class PipelinePhase(Enum):
    """The phases one batch goes through in a pipeline, in order."""

    NULL = "null"
    COPY_BATCH_TO_DEVICE = "copy_batch_to_device"
    INPUT_POST_PROC = "input_post_proc"
    INPUT_SPLITS_DIST = "input_splits_dist"
    INPUT_DATA_DIST = "input_data_dist"
    EMBEDDING_LOOKUP = "embedding_lookup"
    EMBEDDING_OUTPUT_DIST = "embedding_output_dist"
    DENSE_FORWARD = "dense_forward"
    DENSE_BACKWARD = "dense_backward"
    EMBEDDING_GRAD_DIST = "embedding_grad_dist"
    EMBEDDING_BACKWARD = "embedding_backward"
    EMBEDDING_UPDATE = "embedding_update"
    DENSE_OPTIMIZER_STEP = "dense_optimizer_step"

    def __str__(self) -> str:
        return self.value
