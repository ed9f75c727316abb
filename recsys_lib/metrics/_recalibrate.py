"""Undoing negative down-sampling on predictions (private helper of the recalibrated metrics).

A model trained with negatives kept at rate ``1 / c`` over-predicts; with coefficient ``c``:

    p' = c * p / (c * p + 1 - p)
"""

import torch


def recalibrate(predictions: torch.Tensor, coefficient: float) -> torch.Tensor:
    """``(T, B)`` -> ``(T, B)`` recalibrated predictions (float64); ``coefficient`` must be > 0."""
    p = predictions.to(torch.double)
    return coefficient * p / (coefficient * p + 1.0 - p)


def check_coefficient(metric: str, coefficient: float) -> None:
    if not coefficient > 0:
        raise ValueError(f"{metric}: recalibration_coefficient must be > 0, got {coefficient}")
