"""Collectives: async primitives with gloo fallbacks, their autograd framing, call descriptions, wire codecs, a counter for tests.

Private room: import the owning module (``recsys_lib.distributed._collectives.primitives.<module>``); the public
names are re-exported by the TorchRec-named faces at ``recsys_lib/distributed/``.
"""
