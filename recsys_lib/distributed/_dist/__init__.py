"""Data distribution modules: KJT input dist, pooled / sequence output dists, inference all-to-one gathers, VBE layout math.

Private room: import the owning module (``recsys_lib.distributed._dist.<module>``); the public
names are re-exported by the TorchRec-named faces at ``recsys_lib/distributed/``.
"""
