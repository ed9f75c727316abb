"""MC-EC / MC-EBC: forward equals a plain EC / EBC on the remapped ids; evicted rows are re-initialised."""

import pytest
import torch

from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection
from recsys_lib.modules.mc_embedding_modules import (
    ManagedCollisionEmbeddingBagCollection,
    ManagedCollisionEmbeddingCollection,
)
from recsys_lib.modules.mc_modules import LFU_EvictionPolicy, ManagedCollisionCollection, MCHManagedCollisionModule
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

CPU = torch.device("cpu")


def mcc_for(cfgs, interval=1):
    mods = {c.name: MCHManagedCollisionModule(zch_size=c.num_embeddings, device=CPU, eviction_interval=interval,
                                              eviction_policy=LFU_EvictionPolicy()) for c in cfgs}
    return ManagedCollisionCollection(mods, cfgs)


def raw_batch(gen, keys, batch=3):
    lengths = torch.randint(0, 4, (len(keys) * batch,), generator=gen)
    values = torch.randint(-(2**62), 2**62, (int(lengths.sum()),), generator=gen)
    values[::2] = values[0]  # repeats, so some ids win rows by count
    return KeyedJaggedTensor.from_lengths_sync(keys=keys, values=values, lengths=lengths)


def test_mc_ec_equals_plain_ec_on_remapped_ids():
    cfgs = [EmbeddingConfig(name="t0", embedding_dim=4, num_embeddings=6, feature_names=["a"]),
            EmbeddingConfig(name="t1", embedding_dim=4, num_embeddings=9, feature_names=["b", "c"])]
    torch.manual_seed(0)
    ec = EmbeddingCollection(tables=cfgs)
    mc_ec = ManagedCollisionEmbeddingCollection(ec, mcc_for(cfgs), return_remapped_features=True)
    gen = torch.Generator().manual_seed(1)
    for _ in range(4):
        kjt = raw_batch(gen, ["c", "a", "b"])
        out, remapped = mc_ec(kjt)
        assert remapped is not None and remapped.keys() == ["a", "b", "c"]
        for key, table in (("a", "t0"), ("b", "t1"), ("c", "t1")):
            rows = remapped[key].values()
            assert bool((rows >= 0).all()) and bool((rows < ec.embeddings[table].num_embeddings).all())
            # reference: plain row gather (evicted rows were re-initialised before the lookup)
            torch.testing.assert_close(out[key].values(), ec.embeddings[table].weight[rows])
            assert torch.equal(out[key].lengths(), kjt[key].lengths())


def test_mc_ebc_equals_plain_ebc_on_remapped_ids():
    cfgs = [EmbeddingBagConfig(name="t0", embedding_dim=3, num_embeddings=7, feature_names=["a", "b"])]
    ebc = EmbeddingBagCollection(tables=cfgs)
    mc_ebc = ManagedCollisionEmbeddingBagCollection(ebc, mcc_for(cfgs, interval=2), return_remapped_features=True)
    gen = torch.Generator().manual_seed(2)
    for _ in range(4):
        out, remapped = mc_ebc(raw_batch(gen, ["a", "b"]))
        torch.testing.assert_close(out.values(), ebc(remapped).values())


def test_evicted_rows_are_reinitialised_and_kept_rows_are_not():
    # init_fn fills with 7.0 so re-initialised rows are recognisable; training moves weights elsewhere
    cfg = EmbeddingConfig(name="t", embedding_dim=2, num_embeddings=3, feature_names=["f"],
                          init_fn=lambda w: torch.nn.init.constant_(w, 7.0))
    ec = EmbeddingCollection(tables=[cfg])
    mc_ec = ManagedCollisionEmbeddingCollection(ec, mcc_for([cfg]), return_remapped_features=True)

    def step(ids):
        kjt = KeyedJaggedTensor.from_lengths_sync(keys=["f"], values=torch.tensor(ids), lengths=torch.tensor([len(ids)]))
        return mc_ec(kjt)[1]["f"].values().tolist()

    rows_a = step([100, 100, 200])  # 2 id rows: 100 and 200 admitted
    with torch.no_grad():
        ec.embeddings["t"].weight.fill_(-1.0)  # stand-in for training updates
    rows_b = step([300, 300, 300, 100, 100])  # 300 (3) evicts 200 (1); 100 keeps its row
    w = ec.embeddings["t"].weight
    assert rows_b[0] == rows_a[2]  # 300 took 200's row ...
    assert torch.equal(w[rows_b[0]], torch.full((2,), 7.0))  # ... which was re-initialised
    assert torch.equal(w[rows_a[0]], torch.full((2,), -1.0))  # 100's row untouched


def test_config_mismatch_is_rejected():
    a = [EmbeddingConfig(name="t", embedding_dim=2, num_embeddings=3, feature_names=["f"])]
    b = [EmbeddingConfig(name="u", embedding_dim=2, num_embeddings=3, feature_names=["f"])]
    with pytest.raises(ValueError, match="same table configs"):
        ManagedCollisionEmbeddingCollection(EmbeddingCollection(tables=a), mcc_for(b))


def test_state_dict_round_trip():
    cfgs = [EmbeddingConfig(name="t", embedding_dim=2, num_embeddings=5, feature_names=["f"])]
    a = ManagedCollisionEmbeddingCollection(EmbeddingCollection(tables=cfgs), mcc_for(cfgs))
    gen = torch.Generator().manual_seed(3)
    for _ in range(3):
        a(raw_batch(gen, ["f"]))
    cfgs_b = [EmbeddingConfig(name="t", embedding_dim=2, num_embeddings=5, feature_names=["f"])]
    b = ManagedCollisionEmbeddingCollection(EmbeddingCollection(tables=cfgs_b), mcc_for(cfgs_b))
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    kjt = raw_batch(torch.Generator().manual_seed(3), ["f"])  # the first batch again: its ids are known
    torch.testing.assert_close(a(kjt)[0]["f"].values(), b(kjt)[0]["f"].values())


@pytest.mark.parametrize("zch_method", ["sort_zch", "mpzch"])
def test_adapters_equal_plain_lookup_of_remapped_ids(zch_method):
    from recsys_lib.modules.mc_adapter import McEmbeddingBagCollectionAdapter, McEmbeddingCollectionAdapter

    tables = [EmbeddingConfig(name="t", embedding_dim=4, num_embeddings=40, feature_names=["f"])]
    adapter = McEmbeddingCollectionAdapter(tables, input_hash_size=0 if zch_method == "mpzch" else 2**40,
                                           device=CPU, world_size=1, zch_method=zch_method, mpzch_num_buckets=2)
    kjt = KeyedJaggedTensor.from_lengths_sync(keys=["f"], values=torch.tensor([2**39, 5, 5, 77]),
                                              lengths=torch.tensor([3, 1]))
    out = adapter(kjt)
    mc_ec = adapter.mc_embedding_collection
    mc_ec.eval()
    remapped = mc_ec._managed_collision_collection(kjt)  # the rows after this batch's admissions
    weight = mc_ec._embedding_module.embeddings["t"].weight
    torch.testing.assert_close(out["f"].values(), weight[remapped["f"].values()])
    assert [p.shape for p in adapter.parameters()] == [torch.Size([40, 4])]
    bag_tables = [EmbeddingBagConfig(name="t", embedding_dim=4, num_embeddings=40, feature_names=["f"])]
    bag = McEmbeddingBagCollectionAdapter(bag_tables, input_hash_size=2**40, device=CPU, world_size=1,
                                          zch_method="sort_zch")
    assert bag(kjt).values().shape == (2, 4)
    with pytest.raises(ValueError, match="zch_method"):
        McEmbeddingCollectionAdapter(tables, input_hash_size=10, device=CPU, world_size=1)
