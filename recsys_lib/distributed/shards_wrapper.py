"""``LocalShardsWrapper`` (TorchRec's ``torchrec.distributed.shards_wrapper``): a rank's several local shards of one
tensor seen as one ``torch.Tensor`` (e.g. the ``_local_tensor`` of a DTensor over a column-wise table).

PyTorch ships the same tensor subclass (``torch.distributed.tensor._shards_wrapper``); it is used as is, so DTensors
and distributed checkpoints built by torch and by recsys_lib agree on the type.
"""

from torch.distributed.tensor._shards_wrapper import LocalShardsWrapper  # noqa: F401
