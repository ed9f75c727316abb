import torch
from torch import nn

from recsys_lib import EmbeddingBagCollection
from recsys_lib.quant import embedding_modules as qm
from recsys_lib.quant.utils import meta_to_cpu_placement, recursive_populate_fx_names
from tests.quant._helpers import bag_tables, batch, qconfig


def test_recursive_populate_fx_names_names_each_kernel_by_its_tables():
    ebc = EmbeddingBagCollection(bag_tables(mean=True))
    ebc.qconfig = qconfig(torch.qint8)
    model = nn.Sequential(nn.Sequential(qm.EmbeddingBagCollection.from_float(ebc)))
    recursive_populate_fx_names(model)
    assert [t._fx_path for t in model[0][0].tbes] == ["emb_module.t0", "emb_module.t1"]


def test_meta_to_cpu_placement_materialises_meta_collections():
    tables = bag_tables()
    model = nn.Sequential(qm.EmbeddingBagCollection(tables, is_weighted=False, device=torch.device("meta")))
    meta_to_cpu_placement(model)
    q = model[0]
    assert q.device.type == "cpu"
    assert q.state_dict()["embedding_bags.t0.weight"].device.type == "cpu"
    assert q(batch(False)).values().shape == (3, 40)
