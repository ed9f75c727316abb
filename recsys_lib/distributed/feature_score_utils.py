"""Feature scores for key-value ("virtual") tables evicted by ``FeatureScoreBasedEvictionPolicy``.

With automatic collection on, each input feature of a sharded module carries a score per id in its KJT
weights (the table's ``feature_score_mapping[feature]``, else its ``feature_score_default_value``; 0 for
features of other tables and for tables with an eviction TTL), so the key-value kernel can accumulate it::

    sharding type → {feature: score}       e.g. {<row-wise>: {"f0": 1.0, "f1": 0.0}, <data-parallel>: {}}
    may_collect_feature_scores: KJT of the sharding's features → same KJT with weights = score per id
"""

import logging
from typing import Dict, List, Sequence, Tuple

import torch
from torch.autograd.profiler import record_function

from recsys_lib.distributed.embedding_sharding import EmbeddingShardingInfo
from recsys_lib.distributed.sharding.strategy import strategy_for
from recsys_lib.modules._eviction_policies import FeatureScoreBasedEvictionPolicy
from recsys_lib.modules.embedding_configs import BaseEmbeddingConfig
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

logger: logging.Logger = logging.getLogger(__name__)


def _feature_score_flags(embedding_configs: Sequence[BaseEmbeddingConfig]) -> Tuple[bool, bool]:
    """(weight accumulation on, automatic collection on), checking the virtual tables agree."""
    evicting = [c for c in embedding_configs if c.use_virtual_table and c.virtual_table_eviction_policy is not None]
    scored = [c for c in evicting if isinstance(c.virtual_table_eviction_policy, FeatureScoreBasedEvictionPolicy)]
    if not scored:
        return False, False
    if len(scored) != len(evicting):
        others = sorted(c.name for c in evicting if c not in scored)
        raise ValueError(
            "feature-score eviction: if one virtual table uses FeatureScoreBasedEvictionPolicy, every virtual table "
            f"with an eviction policy must; these do not: {others}"
        )
    auto = [c for c in scored if c.virtual_table_eviction_policy.enable_auto_feature_score_collection]  # type: ignore[union-attr]
    if auto and len(auto) != len(scored):
        manual = sorted(c.name for c in scored if c not in auto)
        raise ValueError(
            "feature-score eviction: if one table enables auto feature score collection, every table with "
            f"FeatureScoreBasedEvictionPolicy must; these do not: {manual}"
        )
    return True, bool(auto)


def create_sharding_type_to_feature_score_mapping(
    embedding_configs: Sequence[BaseEmbeddingConfig],
    sharding_type_to_sharding_infos: Dict[str, List[EmbeddingShardingInfo]],
) -> Tuple[bool, bool, Dict[str, Dict[str, float]]]:
    """Returns ``(weight accumulation on, auto collection on, {sharding type: {feature: score}})``.

    The mapping is filled only with auto collection on; replicated (data-parallel) shardings get ``{}``.

    Raises:
        ValueError: virtual tables mix eviction policies, mix auto collection, or a feature has no score and
            its table no ``feature_score_default_value``.
    """
    accumulate, auto = _feature_score_flags(embedding_configs)
    mapping: Dict[str, Dict[str, float]] = {}
    if not auto:
        return accumulate, auto, mapping
    for sharding_type, infos in sharding_type_to_sharding_infos.items():
        scores: Dict[str, float] = {}
        mapping[sharding_type] = scores
        if strategy_for(sharding_type).replicated:
            continue
        for info in infos:
            config = info.embedding_config
            policy = config.virtual_table_eviction_policy
            if not isinstance(policy, FeatureScoreBasedEvictionPolicy):
                continue
            if policy.eviction_ttl_mins > 0:
                logger.info("table %s (%s): eviction TTL %d mins, feature scores 0", config.name, sharding_type,
                            policy.eviction_ttl_mins)
                scores.update(dict.fromkeys(config.feature_names, 0.0))
                continue
            table_scores = policy.feature_score_mapping or {}
            for feature in config.feature_names:
                if feature in table_scores:
                    scores[feature] = table_scores[feature]
                elif policy.feature_score_default_value is None:
                    raise ValueError(
                        f"table {config.name}: feature {feature!r} is not in feature_score_mapping and the eviction "
                        "policy has no feature_score_default_value"
                    )
                else:
                    scores[feature] = policy.feature_score_default_value
    return accumulate, auto, mapping


@torch.fx.wrap
def may_collect_feature_scores(
    input_feature_splits: List[KeyedJaggedTensor],
    enabled_feature_score_auto_collection: bool,
    sharding_type_feature_score_mapping: Dict[str, Dict[str, float]],
) -> List[KeyedJaggedTensor]:
    """Sets each KJT's weights to the score of its feature per id (in place; 0 for unscored features).

    ``input_feature_splits[i]`` belongs to the i-th sharding type of the mapping. Sharding types with an empty
    mapping are left alone.

    Raises:
        ValueError: a KJT to score already has weights.
    """
    if not enabled_feature_score_auto_collection:
        return input_feature_splits
    with record_function("## collect_feature_score ##"):
        for features, scores in zip(input_feature_splits, sharding_type_feature_score_mapping.values()):
            if features.weights_or_none() is not None:
                raise ValueError(f"feature score collection: KJT of {features.keys()} already has weights")
            if not scores:
                continue
            lengths = features.length_per_key()
            per_key = torch.tensor([scores.get(k, 0.0) for k in features.keys()], dtype=torch.float32)
            counts = torch.tensor(lengths, dtype=torch.long)
            weights = torch.repeat_interleave(per_key, counts, output_size=int(sum(lengths)))
            features._weights = weights.to(features.device()) if features.keys() else None
    return input_feature_splits
