"""Tutorial 8 — managed collisions: raw 64-bit ids into a small table, with eviction (CPU, one process).

    python docs/tutorials/08_managed_collision.py

Real ids (user ids, hashed item ids) are arbitrary 64-bit integers; a table has ``R`` rows. A managed-collision
(MC) module sits in front of each table and decides which ids own a row (details: ``docs/managed_collision.md``):

* ``MCHManagedCollisionModule(zch_size=R, eviction_policy=LFU_EvictionPolicy(), eviction_interval=1)``: ``R - 1``
  rows for ids, the last row for every id without one; in training, every ``eviction_interval`` batches the
  best ``R - 1`` ids (here: the most frequent so far) keep or win a row, the others lose theirs;
* ``ManagedCollisionEmbeddingCollection(ec, mcc)`` remaps a KJT of raw ids to rows, re-initialises the rows that
  changed owner (a new id must not inherit the vector trained for the id it replaced), then looks them up.

The script follows five ids through two training batches, watches one of them lose its row, and checks every
embedding against a plain row gather.
"""

from typing import Dict, List

import torch

from recsys_lib import EmbeddingCollection, EmbeddingConfig, KeyedJaggedTensor
from recsys_lib.modules.mc_embedding_modules import ManagedCollisionEmbeddingCollection
from recsys_lib.modules.mc_modules import LFU_EvictionPolicy, ManagedCollisionCollection, MCHManagedCollisionModule

R = 5  # rows: 4 for ids + 1 shared by every id without a row
D = 4
INIT = 0.0  # the table's init_fn value, so a re-initialised row is easy to see

# Raw ids anywhere in the int64 range (far beyond R).
ALICE, BOB, CAROL, DAVE, ERIN = 7_340_032_111_222_333_444, -2**62 + 5, 2**40 + 17, 9_000_000_000_000_000_001, 31


def batch(ids: List[int]) -> KeyedJaggedTensor:
    """One example, one feature ``user`` holding ``ids``."""
    return KeyedJaggedTensor(keys=["user"], values=torch.tensor(ids, dtype=torch.int64), lengths=torch.tensor([len(ids)]))


def main() -> None:
    torch.manual_seed(0)
    table = EmbeddingConfig(name="t_user", embedding_dim=D, num_embeddings=R, feature_names=["user"],
                            init_fn=lambda w: torch.nn.init.constant_(w, INIT))
    ec = EmbeddingCollection(tables=[table])
    mcc = ManagedCollisionCollection(
        {"t_user": MCHManagedCollisionModule(zch_size=R, device=torch.device("cpu"),
                                             eviction_policy=LFU_EvictionPolicy(), eviction_interval=1)},
        [table],
    )
    mc_ec = ManagedCollisionEmbeddingCollection(ec, mcc, return_remapped_features=True)
    weight = ec.embeddings["t_user"].weight  # (R, D)
    optimizer = torch.optim.SGD(mc_ec.parameters(), lr=0.5)

    def train_step(ids: List[int]) -> Dict[int, int]:
        """One training batch; returns id -> row."""
        out, remapped = mc_ec(batch(ids))  # out["user"]: JaggedTensor, values (len(ids), D)
        rows = remapped["user"].values()  # (len(ids),)
        torch.testing.assert_close(out["user"].values(), weight[rows])  # reference: a plain gather of the rows
        optimizer.zero_grad()
        (out["user"].values() - 1.0).pow(2).sum().backward()  # pull looked-up rows towards 1.0
        optimizer.step()
        return dict(zip(ids, rows.tolist()))

    names = {ALICE: "alice", BOB: "bob", CAROL: "carol", DAVE: "dave", ERIN: "erin"}
    show = lambda m: ", ".join(f"{names[i]}->{r}" for i, r in sorted(m.items(), key=lambda x: x[1]))

    # Batch 1: alice 3x, bob 2x, carol 1x; 4 id rows, so all three get one.
    mc_ec.train()
    first = train_step([ALICE, ALICE, ALICE, BOB, BOB, CAROL])
    print("batch 1 rows:", show(first))
    assert len(set(first.values())) == 3 and max(first.values()) < R - 1
    trained = weight.detach().clone()
    assert all(bool((trained[r] != INIT).all()) for r in first.values())  # the step moved those rows

    # Batch 2: dave 5x, erin 4x, alice once more. Counts so far: dave 5, alice 4, erin 4, bob 2, carol 1;
    # LFU keeps the 4 most frequent, so carol loses her row.
    second = train_step([DAVE] * 5 + [ERIN] * 4 + [ALICE])
    print("batch 2 rows:", show(second))
    assert second[ALICE] == first[ALICE]  # a kept id keeps its row ...
    carol_row = first[CAROL]
    assert carol_row in (second[DAVE], second[ERIN])  # ... carol's row went to a newcomer ...
    new_owner = DAVE if second[DAVE] == carol_row else ERIN
    print(f"evicted: carol (count 1); her row {carol_row} now belongs to {names[new_owner]}")

    # ... and was re-initialised before the newcomer's lookup: after batch 2's step it holds INIT + one update,
    # not carol's trained vector. Bob's row (not in batch 2) still holds what batch 1 trained.
    lr_step = 0.5 * 2 * (1.0 - INIT) * (5 if new_owner == DAVE else 4)  # SGD on sum((w - 1)^2) over the lookups
    torch.testing.assert_close(weight[carol_row].detach(), torch.full((D,), INIT + lr_step))
    torch.testing.assert_close(weight[first[BOB]].detach(), trained[first[BOB]])

    # Eval: no profiling, no eviction; an id without a row (carol now) reads the shared last row.
    mc_ec.eval()
    with torch.no_grad():
        out, remapped = mc_ec(batch([CAROL, BOB, DAVE]))
    rows = remapped["user"].values().tolist()
    print("eval rows: carol ->", rows[0], "(the shared row), bob ->", rows[1], ", dave ->", rows[2])
    assert rows == [R - 1, first[BOB], second[DAVE]]
    torch.testing.assert_close(out["user"].values(), weight[torch.tensor(rows)])

    # The id -> row mapping lives in the module's buffers, so it is checkpointed with the weights.
    keys = [k for k in mc_ec.state_dict() if "_mch_" in k]
    print("mapping state:", ", ".join(k.rsplit(".", 1)[-1] for k in keys))
    assert any(k.endswith("_mch_sorted_raw_ids") for k in keys)
    print("tutorial 8 OK")


if __name__ == "__main__":
    main()
