"""Tutorial 2 — embedding tables: EmbeddingBagCollection (pooled) and EmbeddingCollection (sequence).

    python docs/tutorials/02_embedding_collections.py

An embedding table maps an id to a learned row of ``D`` floats. A *collection* holds several tables, each named
by an ``EmbeddingBagConfig`` / ``EmbeddingConfig`` that lists the features it serves, and takes one
``KeyedJaggedTensor`` with all features:

* ``EmbeddingBagCollection`` (EBC) pools each bag of ids into one vector (sum or mean) → ``KeyedTensor (B, sum(D))``.
* ``EmbeddingCollection`` (EC) returns one vector per id → ``Dict[feature, JaggedTensor]`` with values ``(N_f, D)``.

Both are ordinary single-device ``nn.Module``s; tutorial 3 shards them over processes. The outputs below are
checked against rows read straight out of the weight matrices.
"""

import torch

from recsys_lib import (
    EmbeddingBagCollection,
    EmbeddingBagConfig,
    EmbeddingCollection,
    EmbeddingConfig,
    KeyedJaggedTensor,
    PoolingType,
)

torch.manual_seed(0)

# --- 1. Two tables; table "t_item" is shared by two features -------------------------------------------------
tables = [
    EmbeddingBagConfig(name="t_item", embedding_dim=4, num_embeddings=10, feature_names=["clicked", "liked"]),
    EmbeddingBagConfig(
        name="t_user", embedding_dim=2, num_embeddings=5, feature_names=["user"], pooling=PoolingType.MEAN
    ),
]
ebc = EmbeddingBagCollection(tables=tables, device=torch.device("cpu"))
print(ebc)
# State-dict keys follow TorchRec's: embedding_bags.<table>.weight, shape (R, D).
assert list(ebc.state_dict()) == ["embedding_bags.t_item.weight", "embedding_bags.t_user.weight"]

# --- 2. A batch of B = 3 examples -----------------------------------------------------------------------------
#              b0        b1      b2
#   clicked  [1, 2]     []      [3]
#   liked    [4]        [5]     [6, 7]
#   user     [1]        [2, 3]  [4]
features = KeyedJaggedTensor(
    keys=["clicked", "liked", "user"],
    values=torch.tensor([1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4]),
    lengths=torch.tensor([2, 0, 1, 1, 1, 2, 1, 2, 1]),
)
pooled = ebc(features)  # KeyedTensor, values: (B, 4 + 4 + 2)
assert pooled.keys() == ["clicked", "liked", "user"] and pooled.values().shape == (3, 10)

# --- 3. The same numbers by hand: sum (or mean) of the rows each bag names --------------------------------------
item = ebc.embedding_bags["t_item"].weight.detach()  # (10, 4)
user = ebc.embedding_bags["t_user"].weight.detach()  # (5, 2)
expected_clicked = torch.stack([item[1] + item[2], torch.zeros(4), item[3]])  # an empty bag pools to zeros
expected_liked = torch.stack([item[4], item[5], item[6] + item[7]])
expected_user = torch.stack([user[1], (user[2] + user[3]) / 2, user[4]])  # MEAN pooling
torch.testing.assert_close(pooled["clicked"], expected_clicked)
torch.testing.assert_close(pooled["liked"], expected_liked)
torch.testing.assert_close(pooled["user"], expected_user)
print("pooled embeddings per feature:", {k: tuple(v.shape) for k, v in pooled.to_dict().items()})

# --- 4. EmbeddingCollection: one row per id, no pooling (for sequence models) -------------------------------------
ec = EmbeddingCollection(
    tables=[EmbeddingConfig(name="t_item", embedding_dim=4, num_embeddings=10, feature_names=["clicked"])],
    device=torch.device("cpu"),
)
sequence = ec(KeyedJaggedTensor(keys=["clicked"], values=torch.tensor([1, 2, 3]), lengths=torch.tensor([2, 0, 1])))
clicked = sequence["clicked"]  # JaggedTensor, values: (N=3, D=4), lengths as in the input
weight = ec.embeddings["t_item"].weight.detach()
torch.testing.assert_close(clicked.values(), weight[torch.tensor([1, 2, 3])])
assert clicked.lengths().tolist() == [2, 0, 1]

# --- 5. Gradients reach only the rows that were looked up -------------------------------------------------------
pooled["clicked"].sum().backward()
grad = ebc.embedding_bags["t_item"].weight.grad  # (10, 4); rows 1, 2, 3 were used by "clicked"
touched = (grad.abs().sum(dim=1) > 0).nonzero().flatten().tolist()
assert touched == [1, 2, 3], touched

print("tutorial 2 OK")
