"""``torch.export`` support for embedding modules (TorchRec's ``torchrec.ir``).

Embedding modules are swapped for a shape-only "meta" forward (a custom op that returns empty pooled outputs) and
their configuration is stored as JSON bytes in a non-persistent ``ir_metadata`` buffer, so ``torch.export`` keeps
them as small opaque calls; after ``torch.export.unflatten`` the buffers rebuild eager modules
(``utils.decapsulate_ir_modules``). ``schema`` holds the JSON shapes, ``serializer`` the per-module serializers,
``types`` the interface.
"""
