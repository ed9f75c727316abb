"""Batched (FBGEMM TBE) kernels: pooled and sequence lookups, table grouping, fused optimizer view, shared TBE helpers.

Private room: import the owning module (``recsys_lib.distributed._tbe.<module>``); the public
names are re-exported by the TorchRec-named faces at ``recsys_lib/distributed/``.
"""
