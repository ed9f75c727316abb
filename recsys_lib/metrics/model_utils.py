"""Reading metric inputs out of a model's output dict (``model_out``).

    labels, predictions, weights, required = parse_task_model_outputs(tasks, model_out, ["session_id"])
    # each: Dict[task name, Tensor (B,)];  required: Dict[input name, Tensor (B,)]
"""

from typing import Any, Dict, List, Optional, Tuple

import torch

from recsys_lib.metrics.metrics_config import RecTaskInfo


def session_ids_to_tensor(session_ids: List[str], device: Optional[torch.device] = None) -> torch.Tensor:
    """String session ids -> ``(B,)`` int64 ids, numbered 1, 2, ... in order of first appearance."""
    numbering: Dict[str, int] = {}
    ids = [numbering.setdefault(s, len(numbering) + 1) for s in session_ids]
    return torch.tensor(ids, dtype=torch.long, device=device)


def is_empty_signals(labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor) -> bool:
    """True when every one of the three tensors is empty (a batch with no example for the task)."""
    return labels.numel() == 0 and predictions.numel() == 0 and weights.numel() == 0


def parse_model_outputs(
    label_name: str, prediction_name: str, weight_name: str, model_out: Dict[str, torch.Tensor]
) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """``(labels, predictions, weights)`` of one task, each flattened to ``(B,)`` (a ``(B, 1)`` prediction too).

    Raises ``ValueError`` naming the missing key when the label, prediction or weight is absent.
    """
    for what, name in (("Label", label_name), ("Prediction", prediction_name), ("Weight", weight_name)):
        if name not in model_out:
            raise ValueError(f"{what} {name} not found in model output (keys: {sorted(model_out)})")
    labels = model_out[label_name].squeeze()
    predictions = model_out[prediction_name].squeeze()
    weights = model_out[weight_name].squeeze()
    if labels.dim() == 0:  # a batch of one
        labels, predictions, weights = labels.reshape(1), predictions.reshape(1), weights.reshape(1)
    if not is_empty_signals(labels, predictions, weights) and not (
        labels.shape[0] == predictions.shape[0] == weights.shape[0]
    ):
        raise ValueError(
            f"{label_name} {tuple(labels.shape)}, {prediction_name} {tuple(predictions.shape)} and {weight_name} "
            f"{tuple(weights.shape)} must have the same shape"
        )
    return labels, predictions, weights


def parse_required_inputs(
    model_out: Dict[str, Any],
    required_inputs_list: List[str],
    ndcg_transform_input: bool = False,
    device: Optional[torch.device] = None,
) -> Dict[str, torch.Tensor]:
    """The required inputs named in ``required_inputs_list`` (those present), as tensors; a list of string
    session ids becomes ``session_ids_to_tensor``; with ``ndcg_transform_input`` a 2-D input is flattened."""
    out: Dict[str, torch.Tensor] = {}
    for name in required_inputs_list:
        if name not in model_out:
            continue
        value = model_out[name]
        if isinstance(value, list):
            value = session_ids_to_tensor([str(v) for v in value], device=device)
        elif ndcg_transform_input and isinstance(value, torch.Tensor) and value.dim() == 2:
            value = value.reshape(-1)
        out[name] = value.to(device) if device is not None else value
    return out


def parse_task_model_outputs(
    tasks: List[RecTaskInfo],
    model_out: Dict[str, torch.Tensor],
    required_inputs_list: Optional[List[str]] = None,
) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor], Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """``(labels, predictions, weights, required_inputs)`` dicts keyed by task name (required inputs by their
    own name). A task whose weight is absent from ``model_out`` weighs 1 everywhere."""
    if not isinstance(model_out, dict):
        raise TypeError(f"model_out must be a dict of name -> tensor, got {type(model_out).__name__}")
    labels: Dict[str, torch.Tensor] = {}
    predictions: Dict[str, torch.Tensor] = {}
    weights: Dict[str, torch.Tensor] = {}
    for task in tasks:
        for what, name in (("Label", task.label_name), ("Prediction", task.prediction_name)):
            if name not in model_out:
                raise ValueError(
                    f"{what} {name} not found in model output for task {task.name!r} (keys: {sorted(model_out)})"
                )
        view = dict(model_out)
        if task.weight_name not in view and task.prediction_name in view:
            view[task.weight_name] = torch.ones_like(view[task.prediction_name])
        lab, pred, w = parse_model_outputs(task.label_name, task.prediction_name, task.weight_name, view)
        assert pred is not None and w is not None  # present: checked by parse_model_outputs
        labels[task.name], predictions[task.name], weights[task.name] = lab, pred, w
    required: Dict[str, torch.Tensor] = {}
    if required_inputs_list:
        missing = sorted(n for n in required_inputs_list if n not in model_out)
        if missing:
            raise ValueError(f"model_out lacks inputs {missing} that the metrics require")
        required = parse_required_inputs(model_out, list(required_inputs_list))
    return labels, predictions, weights, required
