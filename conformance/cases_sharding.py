"""Sharding layouts (shard sizes and offsets per strategy) and the inference dists of the sharding strategies."""

from typing import Any, Callable, List, Tuple

import torch

Calls = List[Tuple[str, Callable[[], Any]]]


def layouts(lib: Any) -> Calls:
    plan = lib.m("distributed.sharding_plan")

    def shards(rows: int, cols: int, world: int, local: int, st: str, **kw: Any) -> Callable[[], Any]:
        return lambda: plan.calculate_shard_sizes_and_offsets(torch.empty(rows, cols), world, local, st, **kw)

    calls: Calls = []
    for rows, world in [(10, 4), (5, 4), (9, 4), (1, 3), (0, 2), (16, 2), (7, 3)]:
        calls.append((f"row_wise R={rows} W={world}", shards(rows, 4, world, world, "row_wise")))
    for rows, world, buckets in [(5, 4, 5), (10, 4, 5), (6, 4, 6), (14, 4, 7), (12, 4, 4), (10, 4, 2), (0, 2, 0)]:
        calls.append((f"row_wise R={rows} W={world} buckets={buckets}",
                      shards(rows, 4, world, world, "row_wise", num_buckets=buckets)))
    for rows, memory in [(100, [1, 1, 2]), (10, [1, 1, 1]), (7, [3, 0, 1])]:
        calls.append((f"row_wise R={rows} memory={memory}",
                      shards(rows, 4, len(memory), len(memory), "row_wise", device_memory_sizes=memory)))
    for rows, world, local in [(10, 4, 2), (7, 4, 2), (9, 6, 3)]:
        calls.append((f"table_row_wise R={rows} W={world} L={local}", shards(rows, 4, world, local, "table_row_wise")))
    for cols, world, dim in [(16, 2, None), (12, 4, 4), (10, 2, 4), (300, 2, None), (256, 2, None), (8, 2, 3),
                             (14, 2, 4), (24, 2, 5), (512, 2, 0)]:
        calls.append((f"column_wise D={cols} W={world} dim={dim}",
                      shards(6, cols, world, world, "column_wise", col_wise_shard_dim=dim)))
        calls.append((f"table_column_wise D={cols} W={world} dim={dim}",
                      shards(6, cols, world, world, "table_column_wise", col_wise_shard_dim=dim)))
    for rows, cols, dim in [(7, 256, None), (7, 300, None), (10, 16, 4)]:
        calls.append((f"grid_shard R={rows} D={cols} dim={dim}",
                      shards(rows, cols, 4, 2, "grid_shard", col_wise_shard_dim=dim)))
    return calls


def infer_dists(lib: Any) -> Calls:
    settings = lib.m("distributed.global_settings")
    rw = lib.m("distributed.sharding.rw_sharding")
    cw = lib.m("distributed.sharding.cw_sharding")
    tw = lib.m("distributed.sharding.tw_sharding")
    kjt_mod = lib.m("sparse.jagged_tensor")
    cpu = torch.device("cpu")

    def batch(weighted: bool) -> Any:
        w = torch.tensor([0.5, 0.6, 0.7, 0.8, 0.9, 1.0]) if weighted else None
        return kjt_mod.KeyedJaggedTensor.from_lengths_sync(
            ["a", "b"], torch.tensor([7, 1, 9, 3, 2, 5]), torch.tensor([2, 1, 0, 1, 1, 1]), weights=w)

    def rw_input(weighted: bool, **kw: Any) -> Callable[[], Any]:
        def call() -> Any:
            settings.set_propogate_device(True)  # TorchRec's KJTOneToAll would move CPU inputs to CUDA
            try:
                out = rw.InferRwSparseFeaturesDist(2, 2, [10, 6], device=cpu, **kw)(batch(weighted))
            finally:
                settings.set_propogate_device(False)
            return [[f.keys(), f.values(), f.lengths(), f.weights_or_none()] for f in out.features] + [
                out.unbucketize_permute_tensor, out.bucket_mapping_tensor, out.bucketized_length]
        return call

    calls: Calls = []
    for weighted in (False, True):
        for name, kw in [("plain", {}), ("sequence", {"is_sequence": True}),
                         ("uneven", {"is_sequence": True, "embedding_shard_metadata": [[0, 2, 10], [0, 4, 6]]}),
                         ("feature processor", {"has_feature_processor": True}),
                         ("need_pos", {"need_pos": True, "has_feature_processor": True}),
                         ("original ids", {"is_sequence": True, "keep_original_indices": True})]:
            calls.append((f"InferRwSparseFeaturesDist {name} weighted={weighted}", rw_input(weighted, **kw)))

    def tw_input() -> Any:
        settings.set_propogate_device(True)
        try:
            out = tw.InferTwSparseFeaturesDist([1, 1], 2, cpu)(batch(False))
        finally:
            settings.set_propogate_device(False)
        return [[f.keys(), f.values(), f.lengths()] for f in out.features]

    g = torch.Generator().manual_seed(0)
    parts = [torch.randn(3, 4, generator=g), torch.randn(3, 2, generator=g)]
    calls += [
        ("InferTwSparseFeaturesDist", tw_input),
        ("InferTwPooledEmbeddingDist", lambda: tw.InferTwPooledEmbeddingDist(cpu, 2)(parts)),
        ("InferCwPooledEmbeddingDist", lambda: cw.InferCwPooledEmbeddingDist(cpu, 2)(parts)),
        ("InferCwPooledEmbeddingDistWithPermute",
         lambda: cw.InferCwPooledEmbeddingDistWithPermute(cpu, 2, [1, 3, 2], [2, 0, 1])(parts)),
        ("InferRwPooledEmbeddingDist", lambda: rw.InferRwPooledEmbeddingDist(cpu, 2)([parts[0], parts[0] * 2])),
    ]
    return calls


CASES = {"sharding.layouts": layouts, "sharding.infer_dists": infer_dists}
