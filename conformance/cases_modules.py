"""Modules and models: forward on shared weights, repr, state-dict keys (loaded strictly from TorchRec's)."""

from typing import Any, Callable, List, Tuple

import torch

Calls = List[Tuple[str, Callable[[], Any]]]


def _kjt(lib: Any, keys: Tuple[str, ...] = ("f0", "f1", "f2")) -> Any:
    K = lib.m("sparse.jagged_tensor").KeyedJaggedTensor
    n = len(keys)
    lengths = torch.tensor(([2, 0, 1, 3, 1, 1] * n)[: 2 * n])
    values = torch.arange(int(lengths.sum())) % 7
    return K.from_lengths_sync(list(keys), values, lengths, weights=torch.linspace(0.5, 2.0, int(lengths.sum())))


def _bag_tables(lib: Any, dim: int = 4) -> List[Any]:
    C = lib.m("modules.embedding_configs").EmbeddingBagConfig
    return [C(num_embeddings=8, embedding_dim=dim, name="t0", feature_names=["f0", "f1"]),
            C(num_embeddings=9, embedding_dim=dim, name="t1", feature_names=["f1", "f2"])]


def _module_calls(name: str, m: torch.nn.Module, fwd: Callable[[], Any]) -> Calls:
    return [(f"{name} forward", fwd), (f"{name} repr", lambda: repr(m)),
            (f"{name} state_dict keys", lambda: list(m.state_dict().keys()))]


def embedding_collections(lib: Any) -> Calls:
    em = lib.m("modules.embedding_modules")
    cfg = lib.m("modules.embedding_configs")
    ebc = lib.share(em.EmbeddingBagCollection(_bag_tables(lib)), "ebc")
    webc = lib.share(em.EmbeddingBagCollection(_bag_tables(lib), is_weighted=True), "webc")
    ec = lib.share(em.EmbeddingCollection([cfg.EmbeddingConfig(num_embeddings=8, embedding_dim=4, name="t0",
                                                                feature_names=["f0", "f2"])]), "ec")
    meta = em.EmbeddingBagCollection(_bag_tables(lib), device=torch.device("meta"))
    extra = lambda: _kjt(lib, ("f0", "zz", "f1", "f2"))  # noqa: E731
    return (
        _module_calls("EBC", ebc, lambda: ebc(_kjt(lib)))
        + _module_calls("weighted EBC", webc, lambda: webc(_kjt(lib)))
        + _module_calls("EC", ec, lambda: ec(_kjt(lib)))
        + [
            ("EBC extra keys ignored", lambda: ebc(extra())),
            ("EC extra keys ignored", lambda: ec(extra())),
            ("EBC missing feature raises", lambda: ebc(_kjt(lib, ("f0",)))),
            ("EBC weights ignored when unweighted", lambda: ebc(_kjt(lib))),
            ("EBC on meta", lambda: meta(_kjt(lib))),
            ("EBC meta device", lambda: meta.device),
            ("EBC configs", lambda: [t.name for t in ebc.embedding_bag_configs()]),
            ("EC names by table", lambda: ec.embedding_names_by_table()),
            ("EC need_indices", lambda: em.EmbeddingCollection(ec.embedding_configs(), need_indices=True)
             .need_indices()),
            ("empty EC", lambda: em.EmbeddingCollection(tables=[])(_kjt(lib))),
        ]
    )


def feature_processors(lib: Any) -> Calls:
    em = lib.m("modules.embedding_modules")
    fp_ = lib.m("modules.feature_processor_")
    fpm = lib.m("modules.fp_embedding_modules")
    fx = lib.m("fx")
    coll = lib.share(fpm.FeatureProcessedEmbeddingBagCollection(
        em.EmbeddingBagCollection(_bag_tables(lib), is_weighted=True),
        fp_.PositionWeightedModuleCollection({"f0": 4, "f1": 4, "f2": 4})), "fp_coll")
    with torch.no_grad():
        for i, p in enumerate(coll._feature_processors.position_weights.values()):
            p.copy_(torch.linspace(0.5, 1.5, 4) * (i + 1))
    dct = lib.share(fpm.FeatureProcessedEmbeddingBagCollection(
        em.EmbeddingBagCollection(_bag_tables(lib), is_weighted=True),
        {f: fp_.PositionWeightedModule(4) for f in ("f0", "f1", "f2")}), "fp_dict")
    pwc = fp_.PositionWeightedModuleCollection({"f0": 4, "f2": 3})
    traced = fx.symbolic_trace(coll)
    return (
        _module_calls("FP-EBC collection", coll, lambda: coll(_kjt(lib)))
        + _module_calls("FP-EBC dict", dct, lambda: dct(_kjt(lib)))
        + [("PWC forward", lambda: pwc(_kjt(lib)).weights()), ("FP-EBC traced", lambda: traced(_kjt(lib)))]
    )


def dense_modules(lib: Any) -> Calls:
    mlp = lib.m("modules.mlp")
    cn = lib.m("modules.crossnet")
    act = lib.m("modules.activation")
    dfm = lib.m("modules.deepfm")
    x = torch.randn(4, 6)
    mods = {
        "MLP": lib.share(mlp.MLP(6, [5, 3]), "mlp"),
        "Perceptron": lib.share(mlp.Perceptron(6, 3), "perceptron"),
        "CrossNet": lib.share(cn.CrossNet(6, 2), "crossnet"),
        "LowRankCrossNet": lib.share(cn.LowRankCrossNet(6, 2, low_rank=2), "lrcn"),
        "VectorCrossNet": lib.share(cn.VectorCrossNet(6, 2), "vcn"),
        "LowRankMixtureCrossNet": lib.share(cn.LowRankMixtureCrossNet(6, 2, num_experts=2, low_rank=2), "lrmcn"),
        "SwishLayerNorm": lib.share(act.SwishLayerNorm(6), "sln"),
    }
    calls: Calls = []
    for name, m in mods.items():
        calls += _module_calls(name, m, lambda m=m: m(x))
    fm = dfm.FactorizationMachine()
    deep = lib.share(dfm.DeepFM(dense_module=torch.nn.Sequential(torch.nn.Linear(10, 2))), "deepfm")
    embs = [torch.randn(4, 2, 3), torch.randn(4, 4)]
    calls += _module_calls("FactorizationMachine", fm, lambda: fm(embs))
    calls += _module_calls("DeepFM", deep, lambda: deep(embs))
    return calls


def regroup_and_debug(lib: Any) -> Calls:
    rg = lib.m("modules.regroup")
    KT = lib.m("sparse.jagged_tensor").KeyedTensor
    a, b, c = torch.randn(3, 2), torch.randn(3, 1), torch.randn(3, 4)
    kts = [KT.from_tensor_list(["a", "b"], [a, b]), KT.from_tensor_list(["c"], [c])]
    mod = rg.KTRegroupAsDict(groups=[["c", "a"], ["b"]], keys=["x", "y"])
    dbg = lib.share(lib.m("modules.debug_embedding_modules").DebugEmbeddingBagCollection(
        _bag_tables(lib), device=torch.device("cpu"), debug_mode=True), "debug_ebc")
    return (_module_calls("KTRegroupAsDict", mod, lambda: mod(kts))
            + [("KTRegroupAsDict second call", lambda: mod(kts))]
            + _module_calls("DebugEBC", dbg, lambda: dbg(_kjt(lib))))


def models(lib: Any) -> Calls:
    em = lib.m("modules.embedding_modules")
    dlrm = lib.m("models.dlrm")
    deepfm = lib.m("models.deepfm")
    C = lib.m("modules.embedding_configs").EmbeddingBagConfig
    tables = [C(num_embeddings=8, embedding_dim=4, name=f"t{i}", feature_names=[f"f{i}"]) for i in range(3)]
    dense = torch.rand(2, 5)
    ebc = lambda: em.EmbeddingBagCollection(tables)  # noqa: E731
    built = {
        "DLRM": dlrm.DLRM(ebc(), 5, [6, 4], [5, 1]),
        "DLRM_DCN": dlrm.DLRM_DCN(ebc(), 5, [6, 4], [5, 1], dcn_num_layers=2, dcn_low_rank_dim=2),
        "DLRM_Projection": dlrm.DLRM_Projection(ebc(), 5, [6, 4], [5, 1], interaction_branch1_layer_sizes=[6, 8],
                                                interaction_branch2_layer_sizes=[6, 4]),
        "SimpleDeepFMNN": deepfm.SimpleDeepFMNN(5, ebc(), hidden_layer_size=6, deep_fm_dimension=3),
    }
    tdlrm = lib.m("models.experimental.transformerdlrm")
    built["DLRM_Transformer"] = tdlrm.DLRM_Transformer(ebc(), 5, [6, 4], [5, 1], nhead=2, ntransformer_layers=1).eval()
    calls: Calls = []
    for name, m in built.items():
        lib.share(m, name)
        calls += _module_calls(name, m, lambda m=m: m(dense, _kjt(lib)))
    train = dlrm.DLRMTrain(built["DLRM"])
    batch = lib.m("datasets.utils").Batch(dense_features=dense, sparse_features=_kjt(lib), labels=torch.tensor([0, 1]))
    calls.append(("DLRMTrain", lambda: train(batch)))
    return calls


CASES = {"modules.embedding": embedding_collections, "modules.feature_processors": feature_processors,
         "modules.dense": dense_modules, "modules.regroup+debug": regroup_and_debug, "models": models}
