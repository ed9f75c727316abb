"""Full validation of a ``KeyedJaggedTensor`` (reads the data: host syncs; not for hot paths).

Use it at data-loading boundaries or in tests. Structural problems raise ``ValueError``/``TypeError`` naming the key
and what was expected; ids outside a table's range (with ``configs``) are logged and make the result ``False``.
"""

import logging
from typing import Any, List, Optional

import torch

from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor
from recsys_lib.sparse._utils import is_integer_dtype

logger: logging.Logger = logging.getLogger(__name__)


def _check_keys(kjt: KeyedJaggedTensor) -> None:
    keys = kjt.keys()
    for k in keys:
        if not isinstance(k, str):
            raise TypeError(f"validate_keyed_jagged_tensor: keys must be str, got {k!r}")
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"validate_keyed_jagged_tensor: duplicate keys {dup}")


def _check_offsets(offsets: torch.Tensor, num_values: int) -> None:
    if offsets.numel() == 0 or int(offsets[0].item()) != 0:
        raise ValueError(f"validate_keyed_jagged_tensor: offsets must start at 0, got {offsets[:3].tolist()}...")
    steps = offsets[1:] - offsets[:-1]
    if steps.numel() > 0 and int(steps.min().item()) < 0:
        at = int(torch.nonzero(steps < 0)[0].item())
        raise ValueError(
            f"validate_keyed_jagged_tensor: offsets must be non-decreasing; offsets[{at}]={int(offsets[at])} > "
            f"offsets[{at + 1}]={int(offsets[at + 1])}"
        )
    if int(offsets[-1].item()) != num_values:
        raise ValueError(
            f"validate_keyed_jagged_tensor: last offset {int(offsets[-1])} != number of values {num_values}"
        )


def validate_keyed_jagged_tensor(kjt: KeyedJaggedTensor, configs: Optional[List[Any]] = None) -> bool:
    """Check every invariant of ``kjt``; with embedding ``configs`` also that ids fit their tables.

    Args:
        kjt: the batch to check.
        configs: ``EmbeddingBagConfig``/``EmbeddingConfig``-like objects (``feature_names``, ``num_embeddings``).

    Returns:
        ``True`` when valid; ``False`` when some ids are outside their table (logged). Raises on malformed structure.
    """
    if not isinstance(kjt, KeyedJaggedTensor):
        raise TypeError(f"validate_keyed_jagged_tensor: expected a KeyedJaggedTensor, got {type(kjt).__name__}")
    _check_keys(kjt)
    values = kjt.values()
    if not is_integer_dtype(values.dtype):
        raise TypeError(f"validate_keyed_jagged_tensor: values must be integer ids, got dtype {values.dtype}")
    lengths = kjt.lengths_or_none()
    offsets = kjt.offsets_or_none()
    if lengths is not None:
        if lengths.numel() > 0 and int(lengths.min().item()) < 0:
            at = int(torch.nonzero(lengths.view(-1) < 0)[0].item())
            raise ValueError(f"validate_keyed_jagged_tensor: negative length {int(lengths.view(-1)[at])} at index {at}")
        total = int(lengths.sum().item())
        if total != values.numel():
            raise ValueError(f"validate_keyed_jagged_tensor: lengths sum to {total} but there are {values.numel()} values")
    if offsets is not None:
        _check_offsets(offsets, values.numel())
        if lengths is not None and not torch.equal(offsets[1:] - offsets[:-1], lengths.view(-1).to(offsets.dtype)):
            raise ValueError("validate_keyed_jagged_tensor: lengths and offsets disagree")
    weights = kjt.weights_or_none()
    if weights is not None and weights.numel() != values.numel():
        raise ValueError(
            f"validate_keyed_jagged_tensor: {weights.numel()} weights for {values.numel()} values"
        )
    num_entries = (lengths.numel() if lengths is not None else kjt.offsets().numel() - 1)
    expected = sum(kjt.stride_per_key())
    if num_entries != expected:
        raise ValueError(
            f"validate_keyed_jagged_tensor: lengths has {num_entries} entries, expected {expected} "
            f"(strides per key {kjt.stride_per_key()})"
        )
    if configs is None:
        return True
    return _check_id_ranges(kjt, configs)


def _check_id_ranges(kjt: KeyedJaggedTensor, configs: List[Any]) -> bool:
    ok = True
    jt_dict = kjt.to_dict()
    for config in configs:
        for feature in config.feature_names:
            if feature not in jt_dict:
                continue
            ids = jt_dict[feature].values()
            if ids.numel() == 0:
                continue
            lo, hi = int(ids.min().item()), int(ids.max().item())
            if lo < 0 or hi >= config.num_embeddings:
                logger.warning(
                    "feature %r has ids in [%d, %d] outside table %r with %d rows",
                    feature, lo, hi, getattr(config, "name", "?"), config.num_embeddings,
                )
                ok = False
    return ok
