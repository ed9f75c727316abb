"""Adapters that put managed collision in front of an EC / EBC built from table configs
(``torchrec.modules.mc_adapter``).

``zch_method="mpzch"``: one ``HashZchManagedCollisionModule`` per table (single-TTL eviction, ``eviction_interval``
hours); ``"sort_zch"``: one ``MCHManagedCollisionModule`` (distance-LFU, a round every ``eviction_interval``
batches). The tables are built on ``device`` (TorchRec builds them on ``meta``, usable only once sharded).
"""

from typing import Dict, Iterator, List, Optional, Union

import torch
from torch import nn
from torch.nn.parameter import Parameter

from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection
from recsys_lib.modules.hash_mc_evictions import HashZchEvictionConfig, HashZchEvictionPolicyName
from recsys_lib.modules.hash_mc_modules import HashZchManagedCollisionModule
from recsys_lib.modules.mc_embedding_modules import (
    ManagedCollisionEmbeddingBagCollection,
    ManagedCollisionEmbeddingCollection,
)
from recsys_lib.modules._mc_base import ManagedCollisionModule
from recsys_lib.modules._mc_eviction import DistanceLFU_EvictionPolicy
from recsys_lib.modules._mch import MCHManagedCollisionModule
from recsys_lib.modules.mc_modules import ManagedCollisionCollection
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor


def _mc_modules(
    tables: List[Union[EmbeddingConfig, EmbeddingBagConfig]],
    input_hash_size: int,
    device: torch.device,
    world_size: int,
    eviction_interval: int,
    zch_method: str,
    num_buckets: Optional[int],
    max_probe: Optional[int],
) -> Dict[str, ManagedCollisionModule]:
    modules: Dict[str, ManagedCollisionModule] = {}
    for t in tables:
        if zch_method == "mpzch":
            buckets = num_buckets if num_buckets else world_size
            window = t.num_embeddings // world_size // buckets
            modules[t.name] = HashZchManagedCollisionModule(
                is_inference=False, zch_size=t.num_embeddings, input_hash_size=input_hash_size, device=device,
                total_num_buckets=buckets, max_probe=min(max_probe, window) if max_probe else window,
                eviction_policy_name=HashZchEvictionPolicyName.SINGLE_TTL_EVICTION,
                eviction_config=HashZchEvictionConfig(features=t.feature_names, single_ttl=eviction_interval),
            )
        elif zch_method == "sort_zch":
            modules[t.name] = MCHManagedCollisionModule(
                zch_size=t.num_embeddings, device=device, input_hash_size=input_hash_size,
                eviction_interval=eviction_interval, eviction_policy=DistanceLFU_EvictionPolicy(),
            )
        else:
            raise ValueError(f"zch_method must be 'mpzch' or 'sort_zch', got {zch_method!r}")
    return modules


class McEmbeddingCollectionAdapter(nn.Module):
    """An ``EmbeddingCollection`` over ``tables`` behind managed collision.

    Args:
        tables: the EC's table configs.
        input_hash_size: upper bound of the raw ids (0 with ``mpzch``: bucket by ``id mod buckets``).
        device: device of tables and MC state.
        world_size: ranks the tables will be sharded over (sizes the MPZCH buckets).
        eviction_interval: TTL hours (``mpzch``) or batches between eviction rounds (``sort_zch``).
        allow_in_place_embed_weight_update: passed to the MC-EC.
        zch_method: ``"mpzch"`` or ``"sort_zch"``.
        mpzch_num_buckets: MPZCH buckets (default ``world_size`` when falsy).
        mpzch_max_probe: MPZCH probe window (capped at the bucket size).

    Example::

        adapter = McEmbeddingCollectionAdapter(tables, input_hash_size=2**40, device=torch.device("cpu"),
                                               world_size=1, zch_method="sort_zch")
        embeddings = adapter(kjt)  # {feature: JaggedTensor}; adapter.remapped_ids is None (not requested)
    """

    def __init__(
        self,
        tables: List[EmbeddingConfig],
        input_hash_size: int,
        device: torch.device,
        world_size: int,
        eviction_interval: int = 1,
        allow_in_place_embed_weight_update: bool = False,
        zch_method: str = "",
        mpzch_num_buckets: Optional[int] = 80,
        mpzch_max_probe: Optional[int] = 100,
    ) -> None:
        super().__init__()
        ec = EmbeddingCollection(tables=tables, device=device)
        mc = _mc_modules(list(ec.embedding_configs()), input_hash_size, device, world_size, eviction_interval,
                         zch_method, mpzch_num_buckets, mpzch_max_probe)
        self.mc_embedding_collection = ManagedCollisionEmbeddingCollection(
            embedding_collection=ec,
            managed_collision_collection=ManagedCollisionCollection(mc, ec.embedding_configs()),
            allow_in_place_embed_weight_update=allow_in_place_embed_weight_update,
            return_remapped_features=False,
        )
        self.remapped_ids: Optional[Dict[str, torch.Tensor]] = None

    def forward(self, input: KeyedJaggedTensor) -> Dict[str, JaggedTensor]:
        """Args: input, KJT of raw ids. Returns: ``{feature: JaggedTensor (N_f, D)}``."""
        out, remapped = self.mc_embedding_collection(input)
        self.remapped_ids = remapped  # type: ignore[assignment]
        return out  # type: ignore[return-value]

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """The embedding tables' parameters only (not the MC state)."""
        return self.mc_embedding_collection._embedding_module.parameters(recurse=recurse)

    def embedding_bag_configs(self) -> List[EmbeddingConfig]:
        return self.mc_embedding_collection._embedding_module.embedding_configs()  # type: ignore[return-value]


class McEmbeddingBagCollectionAdapter(nn.Module):
    """An ``EmbeddingBagCollection`` over ``tables`` behind managed collision (arguments as the EC adapter).

    Args:
        tables: the EBC's table configs.
        input_hash_size: upper bound of the raw ids.
        device: device of tables and MC state.
        world_size: ranks the tables will be sharded over.
        eviction_interval: TTL hours (``mpzch``) or batches between eviction rounds (``sort_zch``).
        allow_in_place_embed_weight_update: passed to the MC-EBC.
        zch_method: ``"mpzch"`` or ``"sort_zch"``.
        mpzch_num_buckets: MPZCH buckets (default ``world_size`` when falsy).
        mpzch_max_probe: MPZCH probe window (capped at the bucket size).
    """

    def __init__(
        self,
        tables: List[EmbeddingBagConfig],
        input_hash_size: int,
        device: torch.device,
        world_size: int,
        eviction_interval: int = 1,
        allow_in_place_embed_weight_update: bool = False,
        zch_method: str = "",
        mpzch_num_buckets: Optional[int] = 80,
        mpzch_max_probe: Optional[int] = 100,
    ) -> None:
        super().__init__()
        ebc = EmbeddingBagCollection(tables=tables, device=device)
        mc = _mc_modules(list(ebc.embedding_bag_configs()), input_hash_size, device, world_size, eviction_interval,
                         zch_method, mpzch_num_buckets, mpzch_max_probe)
        self.mc_embedding_bag_collection = ManagedCollisionEmbeddingBagCollection(
            embedding_bag_collection=ebc,
            managed_collision_collection=ManagedCollisionCollection(mc, ebc.embedding_bag_configs()),
            allow_in_place_embed_weight_update=allow_in_place_embed_weight_update,
            return_remapped_features=False,
        )

    def forward(self, input_kjt: KeyedJaggedTensor) -> Dict[str, JaggedTensor]:
        """Args: input_kjt, KJT of raw ids. Returns: the EBC's pooled output (a ``KeyedTensor``)."""
        out, _ = self.mc_embedding_bag_collection(input_kjt)
        return out  # type: ignore[return-value]

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        return self.mc_embedding_bag_collection._embedding_module.parameters(recurse=recurse)

    def embedding_bag_configs(self) -> List[EmbeddingBagConfig]:
        return self.mc_embedding_bag_collection._embedding_module.embedding_bag_configs()
