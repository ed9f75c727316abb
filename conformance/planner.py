"""Planner conformance: the same planner calls on TorchRec 1.8.0 and on recsys_lib, compared.

    PYTHONPATH=. /work/main/.venv-compare/bin/python -m conformance.planner [--json out.json]

Each library runs in its own subprocess (they must not share torch op registrations); each prints one
JSON document of results per case. Cases use fixed topologies and meta-device tables:

* plans under constraints that pin the sharding type (table/row/column/table-row/grid-wise, data
  parallel): sharding type, kernel, ranks and every shard's size and offset must be equal;
* free plans (the perf models differ by design: recsys_lib's CPU model is calibrated): reported;
* pure functions (kernel bandwidths, pipeline I/O, miss rates, rounding, hashes): equal;
* errors (a table larger than every device, issue 21's constraints): error type, or the documented
  deviation (docs/deviations.md, "Planner").
"""

import argparse
import json
import logging
import subprocess
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

MiB = 1024 * 1024
GiB = 1024 * MiB

# name, world size, ranks per host, device, tables [(rows, dim)], constraint sharding type (None = free)
PLAN_CASES: List[Tuple[str, int, int, str, List[Tuple[int, int]], Optional[str]]] = [
    ("tw_cuda_w2", 2, 2, "cuda", [(1000, 64), (5000, 128), (200, 32)], "table_wise"),
    ("rw_cuda_w4", 4, 2, "cuda", [(1001, 64), (10, 16)], "row_wise"),
    ("cw_cuda_w2", 2, 2, "cuda", [(1000, 512), (300, 256)], "column_wise"),
    ("twrw_cuda_w4", 4, 2, "cuda", [(999, 64), (4000, 32)], "table_row_wise"),
    ("twcw_cuda_w4", 4, 2, "cuda", [(500, 512)], "table_column_wise"),
    ("grid_cuda_w4", 4, 2, "cuda", [(800, 256)], "grid_shard"),
    ("dp_cuda_w2", 2, 2, "cuda", [(100, 16), (50, 8)], "data_parallel"),
    ("tw_cpu_w2", 2, 2, "cpu", [(1000, 64), (5000, 128), (200, 32)], "table_wise"),
    ("rw_cpu_w2", 2, 1, "cpu", [(777, 32)], "row_wise"),
    ("free_cuda_w2", 2, 2, "cuda", [(100_000, 64), (50, 16), (1_000_000, 128)], None),
    ("free_cpu_w2", 2, 2, "cpu", [(100_000, 64), (50, 16), (1_000_000, 128)], None),
]


def _side(lib: str) -> Dict[str, Any]:
    """Runs every case with library ``lib`` (``torchrec`` or ``recsys_lib``); returns plain results."""
    import importlib

    import torch

    logging.disable(logging.WARNING)
    P = importlib.import_module(f"{lib}.distributed.planner")
    types = importlib.import_module(f"{lib}.distributed.planner.types")
    consts = importlib.import_module(f"{lib}.distributed.planner.constants")
    est = importlib.import_module(f"{lib}.distributed.planner.shard_estimators")
    cfg = importlib.import_module(f"{lib}.modules.embedding_configs")
    mods = importlib.import_module(f"{lib}.modules.embedding_modules")
    ebc_sharding = importlib.import_module(f"{lib}.distributed.embeddingbag")
    dtypes = importlib.import_module(f"{lib}.distributed.types")

    def model(tables: List[Tuple[int, int]], features: int = 1) -> Any:
        configs = [
            cfg.EmbeddingBagConfig(name=f"t{i}", embedding_dim=d, num_embeddings=r,
                                   feature_names=[f"f{i}_{j}" for j in range(features)])
            for i, (r, d) in enumerate(tables)
        ]
        return mods.EmbeddingBagCollection(tables=configs, device=torch.device("meta"))

    def plan_of(topology: Any, m: Any, constraints: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        planner = P.EmbeddingShardingPlanner(topology=topology, constraints=constraints, debug=False)
        plan = planner.plan(m, [ebc_sharding.EmbeddingBagCollectionSharder()])
        out: Dict[str, Any] = {}
        for path, module_plan in plan.plan.items():
            for name, ps in module_plan.items():
                spec = ps.sharding_spec
                shards = sorted(
                    (list(s.shard_offsets), list(s.shard_sizes), s.placement.rank()) for s in spec.shards
                ) if spec is not None else None
                out[f"{path}.{name}"] = {"sharding_type": ps.sharding_type, "compute_kernel": ps.compute_kernel,
                                         "ranks": list(ps.ranks), "shards": shards}
        return out

    def guard(fn: Callable[[], Any]) -> Any:
        try:
            return {"ok": fn()}
        except Exception as e:  # noqa: BLE001  (the error itself is the result)
            return {"error": type(e).__name__, "error_type": str(getattr(e, "error_type", "")), "msg": str(e)[:200],
                    "classes": [c.__name__ for c in type(e).__mro__]}

    res: Dict[str, Any] = {}
    for name, world, local, device, tables, st in PLAN_CASES:
        topo = types.Topology(world_size=world, local_world_size=local, compute_device=device)
        pc = None if st is None else {f"t{i}": types.ParameterConstraints(sharding_types=[st]) for i in range(len(tables))}
        res[f"plan/{name}"] = guard(lambda: plan_of(topo, model(tables), pc))

    small = types.Topology(world_size=2, compute_device="cuda", hbm_cap=64 * MiB, ddr_cap=64 * MiB)
    res["error/too_big"] = guard(lambda: plan_of(small, model([(10_000_000, 128)]),
                                                 {"t0": types.ParameterConstraints(compute_kernels=["fused"])}))
    topo2 = types.Topology(world_size=2, compute_device="cuda")
    res["issue21/unknown_table"] = guard(lambda: plan_of(topo2, model([(100, 16)]), {"nope": types.ParameterConstraints()}))
    res["issue21/long_pooling_factors"] = guard(
        lambda: plan_of(topo2, model([(100, 16)]), {"t0": types.ParameterConstraints(pooling_factors=[1.0, 2.0, 3.0])})
    )

    bw = {}
    for dev in ("cuda", "cpu", "mtia"):
        for k in ("dense", "fused", "fused_uvm", "fused_uvm_caching", "quant", "quant_uvm", "quant_uvm_caching",
                  "key_value", "ssd_virtual_table", "dram_virtual_table"):
            for ratio, prefetch in ((None, False), (0.5, True), (0.5, False)):
                v = consts.kernel_bw_lookup(dev, k, 1000.0, 70.0, 3.0, ratio, prefetch, 0.5)
                bw[f"{dev}/{k}/{ratio}/{prefetch}"] = None if v is None else round(v, 9)
    res["fn/kernel_bw_lookup"] = {"ok": bw}
    io = {}
    for pt in dtypes.PipelineType:
        for mp in (None, 3):
            for eph in (False, True):
                for inf in (False, True):
                    io[f"{pt.value}/{mp}/{eph}/{inf}"] = est.calculate_pipeline_io_cost(10, 100, 7, pt, mp, eph, inf)
    res["fn/calculate_pipeline_io_cost"] = {"ok": io}
    stats = est.EmbeddingOffloadStats(0.5, 100, torch.tensor([10.0, 5.0, 3.0, 2.0, 0.0]), 1000)
    res["fn/expected_miss_rate"] = {"ok": [round(stats.expected_miss_rate(c), 6) for c in (0.0, 0.05, 0.2, 0.5, 1.0)]}
    res["fn/round_to_nearest"] = {"ok": [types.round_to_nearest(x, 4) for x in (0, 2, 6, 10, 11, 13)]}
    res["fn/hash_sha256_str"] = {"ok": types.hash_sha256_str([1, "a", 2.5])}
    res["fn/topology_devices"] = {"ok": [
        [d.storage.hbm, d.storage.ddr, d.storage.ssd]
        for d in types.Topology(world_size=2, compute_device="cuda", pod_size=1).devices
    ] + [types.Topology(world_size=8, local_world_size=2, pod_size=4, compute_device="cuda").intra_group_size]}
    v2 = importlib.import_module(f"{lib}.distributed.planner.estimator.estimator")
    v2types = importlib.import_module(f"{lib}.distributed.planner.estimator.types")
    v2cfg = importlib.import_module(f"{lib}.distributed.planner.estimator.config").EmbeddingPerfEstimatorConfig()
    evals = {}
    for st in ("table_wise", "row_wise", "table_row_wise", "column_wise", "table_column_wise", "data_parallel",
               "grid_shard"):
        for world, local in ((4, 2), (2, 2)):
            for pooled in (True, False):
                for inference in (False, True):
                    ctx = v2types.ShardPerfContext(
                        sharding_type=st, compute_kernel="fused", hash_size=100, emb_dim=48, batch_sizes=[4, 6],
                        num_poolings=[1.0, 2.0], input_lengths=[3.0, 2.0], world_size=world, local_world_size=local,
                        intra_group_size=local, device_bw=1000.0, hbm_to_ddr_mem_bw=100.0, intra_host_bw=10.0,
                        inter_host_bw=1.0, is_pooled=pooled, hash_size_for_clamping=400,
                        comms_bandwidths=types.BasicCommsBandwidths(inter_host_bw=1.0, intra_host_bw=10.0),
                    )
                    perf = v2.get_embedding_perf_sharding_evaluator(st, inference).compute_perf(ctx, v2cfg)
                    evals[f"{st}/{world}/{pooled}/{inference}"] = [
                        round(x, 6) for x in (perf.fwd_compute, perf.fwd_comms, perf.bwd_compute, perf.bwd_comms,
                                              perf.input_dist_comms, perf.prefetch_compute)
                    ]
    res["fn/v2_evaluators"] = {"ok": evals}
    return res


# results recsys_lib is meant to differ on (docs/deviations.md, "Planner"); anything else is a mismatch
EXPECTED_DEVIATIONS = {
    "issue21/long_pooling_factors": "recsys_lib raises PlannerError(INPUT_VALIDATION); TorchRec ignores the extras",
}


def _run_side(lib: str) -> Dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "conformance.planner", "--side", lib], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{lib} side failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _compare(tr: Dict[str, Any], rl: Dict[str, Any]) -> List[Tuple[str, str, str]]:
    rows: List[Tuple[str, str, str]] = []
    for key in tr:
        a, b = tr[key], rl.get(key)
        if key in EXPECTED_DEVIATIONS:
            rows.append((key, "deviation", EXPECTED_DEVIATIONS[key]))
        elif key.startswith("plan/free_"):
            if "ok" in a and "ok" in b:
                same = sum(a["ok"][t]["sharding_type"] == b["ok"].get(t, {}).get("sharding_type") for t in a["ok"])
                rows.append((key, "report", f"{same}/{len(a['ok'])} tables same sharding type (perf models differ)"))
            else:
                rows.append((key, "MISMATCH" if ("ok" in a) != ("ok" in b) else "match", f"tr={a} rl={b}"[:300]))
        elif "error" in a or (b is not None and "error" in b):
            # same PlannerErrorType, or recsys_lib's error is also an instance of TorchRec's class
            same = b is not None and ("error" in a) == ("error" in b) and (
                a.get("error_type") == b.get("error_type") or a.get("error") in b.get("classes", [])
            )
            rows.append((key, "match" if same else "MISMATCH", f"tr={a.get('error_type') or 'ok'} rl={(b or {}).get('error_type') or 'ok'}"))
        else:
            rows.append((key, "match" if a == b else "MISMATCH", "" if a == b else _diff(a, b)))
    return rows


def _diff(a: Any, b: Any) -> str:
    if isinstance(a, dict) and isinstance(b, dict) and "ok" in a and "ok" in b and isinstance(a["ok"], dict):
        keys = [k for k in a["ok"] if a["ok"][k] != b["ok"].get(k)]
        return "; ".join(f"{k}: tr={a['ok'][k]} rl={b['ok'].get(k)}" for k in keys[:3])[:400]
    return f"tr={a} rl={b}"[:400]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=["torchrec", "recsys_lib"], help=argparse.SUPPRESS)
    parser.add_argument("--json", help="write both sides' raw results here")
    args = parser.parse_args(argv)
    if args.side:
        print(json.dumps(_side(args.side)))
        return 0
    tr, rl = _run_side("torchrec"), _run_side("recsys_lib")
    rows = _compare(tr, rl)
    width = max(len(r[0]) for r in rows)
    for key, verdict, detail in rows:
        print(f"{key.ljust(width)}  {verdict:9}  {detail}")
    counts = {v: sum(r[1] == v for r in rows) for v in ("match", "MISMATCH", "deviation", "report")}
    print(f"\nplanner conformance: {counts['match']} match, {counts['MISMATCH']} mismatch, "
          f"{counts['deviation']} documented deviation(s), {counts['report']} reported")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torchrec": tr, "recsys_lib": rl, "rows": rows}, f, indent=1)
    return 1 if counts["MISMATCH"] else 0


if __name__ == "__main__":
    sys.exit(main())
