"""The input dists of sharded quantized EBC / EC as modules of their own (TorchRec's names): one KJT in, each
sharding type's per-rank KJTs out (what that sharding's kernels read), as the shardings' input splits make them.

The sharded modules run the same splits inside their one scriptable forward; these modules expose that step."""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from torch import nn

from recsys_lib._public import public_at
from recsys_lib.distributed._infer.names import flatten_feature_lengths, input_dist_permute
from recsys_lib.distributed.embedding_sharding import KJTList, ListOfKJTList
from recsys_lib.streamable import Multistreamable
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

ShardingKey = Tuple[str, Union[str, Tuple[str, ...]]]  # (sharding type, device type(s))


@public_at("recsys_lib.distributed.quant_embedding")
@dataclass
class EmbeddingCollectionContext(Multistreamable):
    """Context of a sharded quantized EC forward: one context per sharding type."""

    sharding_contexts: List[Any]

    def record_stream(self, stream: torch.Stream) -> None:
        for ctx in self.sharding_contexts:
            record = getattr(ctx, "record_stream", None)
            if record is not None:
                record(stream)


@public_at("recsys_lib.distributed.quant_embeddingbag")
class ShardedQuantEbcInputDist(nn.Module):
    """``forward(KJT) -> ListOfKJTList``: per sharding type (in the mapping's order), the KJT of each active rank.

    Args:
        sharding_type_device_group_to_sharding: ``{(sharding type, device type): Infer*Sharding}``.
        device: where the outputs are meant to be gathered (kept for reference).
    """

    def __init__(self, sharding_type_device_group_to_sharding: Dict[ShardingKey, Any],
                 device: Optional[torch.device] = None) -> None:
        super().__init__()
        self._sharding_type_device_group_to_sharding = sharding_type_device_group_to_sharding
        self._device = device
        self._input_dists = nn.ModuleList([s.create_input_dist() for s in sharding_type_device_group_to_sharding.values()])

    def forward(self, features: KeyedJaggedTensor) -> ListOfKJTList:
        features = flatten_feature_lengths(features)
        return ListOfKJTList([KJTList(dist(features)[0]) for dist in self._input_dists])


@public_at("recsys_lib.distributed.quant_embedding")
class ShardedQuantEcInputDist(nn.Module):
    """``forward(KJT) -> (per sharding: KJTList of its ranks' KJTs, per sharding: the input restricted to its
    features, unbucketize permutes, bucket mappings, bucketized lengths)``. The last three are ``None`` per
    sharding: row-split sequence outputs are put back from kept positions (see ``_infer/dist.py``), not from an
    unbucketize permutation.

    Args:
        input_feature_names: the input KJT's keys, in order.
        sharding_type_device_group_to_sharding: ``{(sharding type, device type): Infer*SequenceSharding}``.
        device / feature_device: kept for reference (all ranks are devices of this process).
    """

    def __init__(
        self,
        input_feature_names: List[str],
        sharding_type_device_group_to_sharding: Dict[ShardingKey, Any],
        device: Optional[torch.device] = None,
        feature_device: Optional[torch.device] = None,
    ) -> None:
        super().__init__()
        self._input_feature_names = list(input_feature_names)
        self._sharding_type_device_group_to_sharding = sharding_type_device_group_to_sharding
        self._device = device
        self._feature_device = feature_device
        where = {f: i for i, f in enumerate(self._input_feature_names)}
        self._features_order: List[List[int]] = []
        for key, sharding in sharding_type_device_group_to_sharding.items():
            unknown = [f for f in sharding.feature_names() if f not in where]
            if unknown:
                raise ValueError(f"sharding {key}: features {unknown} are not among the input features "
                                 f"{self._input_feature_names}")
            self._features_order.append([where[f] for f in sharding.feature_names()])
        for i, order in enumerate(self._features_order):
            self.register_buffer(f"_features_order_tensor_{i}", torch.tensor(order, dtype=torch.int32),
                                 persistent=False)
        self._input_dists = nn.ModuleList([s.create_input_dist() for s in sharding_type_device_group_to_sharding.values()])

    def forward(
        self, features: KeyedJaggedTensor
    ) -> Tuple[List[KJTList], List[KeyedJaggedTensor], List[Optional[torch.Tensor]], List[Optional[torch.Tensor]],
               List[Optional[torch.Tensor]]]:
        if features.keys() != self._input_feature_names:
            raise ValueError(f"ShardedQuantEcInputDist: input keys {features.keys()} differ from the expected "
                             f"{self._input_feature_names}")
        features = flatten_feature_lengths(features)
        per_sharding: List[KJTList] = []
        restricted: List[KeyedJaggedTensor] = []
        for i, dist in enumerate(self._input_dists):
            mine = input_dist_permute(features, self._features_order[i],
                                      getattr(self, f"_features_order_tensor_{i}"))
            restricted.append(mine)
            per_sharding.append(KJTList(dist(mine)[0]))
        none: List[Optional[torch.Tensor]] = [None] * len(per_sharding)
        return per_sharding, restricted, list(none), list(none), list(none)
