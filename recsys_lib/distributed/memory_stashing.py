"""Moving large tensors between host and device memory (TorchRec's ``torchrec.distributed.memory_stashing``)."""

import torch


def chunked_copy_(
    dst: torch.Tensor,
    src: torch.Tensor,
    chunk_size_bytes: int = 536870912,
    non_blocking: bool = True,
    dummy_compute: bool = True,
) -> None:
    """``dst.copy_(src)`` in pieces of at most ``chunk_size_bytes`` (default 512 MiB).

    A long host↔device copy keeps the copy engine busy; splitting it (with a one-element add on the GPU between
    pieces when ``dummy_compute``) lets copies queued on other streams run in the gaps. Non-contiguous tensors,
    ``chunk_size_bytes <= 0`` or a single piece fall back to one ``copy_``. Works on any device, CPU included.

    Args:
        dst: written in place; same number of elements as ``src``.
        src: source tensor.
        chunk_size_bytes: largest piece, in bytes of ``dst``'s dtype.
        non_blocking: passed to each ``copy_``.
        dummy_compute: enqueue the tiny GPU op between pieces (only if one side is on CUDA).

    Raises:
        ValueError: ``dst`` and ``src`` have different element counts.
    """
    numel = dst.numel()
    if numel != src.numel():
        raise ValueError(f"chunked_copy_ size mismatch: dst has {numel} elements, src has {src.numel()}")
    step = max(1, chunk_size_bytes // max(1, dst.element_size())) if chunk_size_bytes > 0 else numel
    if numel == 0 or step >= numel or not (dst.is_contiguous() and src.is_contiguous()):
        dst.copy_(src, non_blocking=non_blocking)
        return
    gpu = dst.device if dst.is_cuda else (src.device if src.is_cuda else None)
    spacer = torch.ones(1, device=gpu) if dummy_compute and gpu is not None else None
    flat_dst, flat_src = dst.view(-1), src.view(-1)
    for start in range(0, numel, step):
        end = min(start + step, numel)
        flat_dst[start:end].copy_(flat_src[start:end], non_blocking=non_blocking)
        if spacer is not None and end < numel:
            spacer.add_(1)
