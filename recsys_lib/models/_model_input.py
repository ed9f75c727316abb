"""The ``ModelInput`` wrappers' shared tail: loss and prediction in training, prediction otherwise."""

from typing import Tuple, Union

import torch


def loss_and_prediction(
    pred: torch.Tensor, label: torch.Tensor, training: bool
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """``(bce_with_logits(pred.squeeze(), label), pred)`` when ``training``, else ``pred`` ``(B, 1)``."""
    if training:
        return (torch.nn.functional.binary_cross_entropy_with_logits(pred.squeeze(), label), pred)
    return pred
