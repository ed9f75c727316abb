"""DLRM for serving: a ``PredictModule`` over a batch dict, and a factory that returns it quantized and scripted.

Batch dict (what a C++ server hands the scripted module)::

    "float_features"             (B, dense_in_features) float
    "id_list_features.lengths"   (F*B,) int                one KJT, keys = id_list_features_keys
    "id_list_features.values"    (sum(L),) int
    →  {"default": (B,) float probabilities}
"""

import argparse
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch

from recsys_lib.datasets.random import RandomRecDataset
from recsys_lib.datasets.utils import Batch
from recsys_lib.fx.tracer import Tracer
from recsys_lib.inference.modules import PredictFactory, PredictModule, quantize_inference_model, shard_quant_model
from recsys_lib.models.dlrm import DLRM
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

DEFAULT_CAT_NAMES: List[str] = ["cat_" + str(i) for i in range(26)]
DEFAULT_INT_NAMES: List[str] = ["int_" + str(i) for i in range(13)]


def create_training_batch(args: argparse.Namespace) -> Batch:
    """One random Criteo-shaped batch: ``args.batch_size`` rows, ids below ``args.num_embedding_features``."""
    return next(iter(RandomRecDataset(
        keys=DEFAULT_CAT_NAMES, batch_size=args.batch_size, hash_size=args.num_embedding_features,
        ids_per_feature=1, num_dense=len(DEFAULT_INT_NAMES),
    )))


@dataclass
class DLRMModelConfig:
    """Sizes of the DLRM to serve, plus one ``sample_input`` batch used to check the scripted module."""

    dense_arch_layer_sizes: List[int]
    dense_in_features: int
    embedding_dim: int
    id_list_features_keys: List[str]
    num_embeddings_per_feature: List[int]
    num_embeddings: int
    over_arch_layer_sizes: List[int]
    sample_input: Batch


class DLRMPredictModule(PredictModule):
    """``DLRM`` behind the batch-dict interface; returns ``{"default": sigmoid(logits) (B,)}`` on CPU."""

    def __init__(
        self,
        embedding_bag_collection: EmbeddingBagCollection,
        dense_in_features: int,
        dense_arch_layer_sizes: List[int],
        over_arch_layer_sizes: List[int],
        id_list_features_keys: List[str],
        dense_device: Optional[torch.device] = None,
    ) -> None:
        module = DLRM(
            embedding_bag_collection=embedding_bag_collection,
            dense_in_features=dense_in_features,
            dense_arch_layer_sizes=dense_arch_layer_sizes,
            over_arch_layer_sizes=over_arch_layer_sizes,
            dense_device=dense_device,
        )
        super().__init__(module, dense_device)  # type: ignore[arg-type]
        self.id_list_features_keys: List[str] = id_list_features_keys

    def predict_forward(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        features = KeyedJaggedTensor(
            keys=self.id_list_features_keys,
            lengths=batch["id_list_features.lengths"],
            values=batch["id_list_features.values"],
        )
        logits = self.predict_module(batch["float_features"], features)
        predictions = logits.sigmoid().reshape([logits.size(0)])
        return {"default": predictions.to(torch.device("cpu"), non_blocking=True).float()}


def _sample_batch(sample: Batch, device: str) -> Dict[str, torch.Tensor]:
    return {
        "float_features": sample.dense_features.to(device),
        "id_list_features.lengths": sample.sparse_features.lengths().to(device),
        "id_list_features.values": sample.sparse_features.values().to(device),
    }


class DLRMPredictFactory(PredictFactory):
    """Builds the DLRM predict module quantized (INT8 tables), sharded table-wise over ``world_size`` devices
    of this process (``shard_quant_model``), fx-traced and TorchScript-compiled."""

    def __init__(self, model_config: DLRMModelConfig) -> None:
        self.model_config = model_config

    def create_predict_module(self, world_size: int, device: str) -> torch.nn.Module:  # type: ignore
        cfg = self.model_config
        tables = [
            EmbeddingBagConfig(
                name="t_" + name,
                embedding_dim=cfg.embedding_dim,
                num_embeddings=cfg.num_embeddings_per_feature[i] if cfg.num_embeddings is None else cfg.num_embeddings,
                feature_names=[name],
            )
            for i, name in enumerate(cfg.id_list_features_keys)
        ]
        module = DLRMPredictModule(
            embedding_bag_collection=EmbeddingBagCollection(tables=tables, device=torch.device(device)),
            dense_in_features=cfg.dense_in_features,
            dense_arch_layer_sizes=cfg.dense_arch_layer_sizes,
            over_arch_layer_sizes=cfg.over_arch_layer_sizes,
            id_list_features_keys=cfg.id_list_features_keys,
            dense_device=torch.device(device),
        )
        quantized, _ = shard_quant_model(quantize_inference_model(module), world_size=world_size,
                                         compute_device=device, sharding_device=device)
        batch = _sample_batch(cfg.sample_input, device)
        quantized(batch)
        tracer = Tracer(leaf_modules=["IntNBitTableBatchedEmbeddingBagsCodegen"])
        gm = torch.fx.GraphModule(quantized, tracer.trace(quantized))
        scripted = torch.jit.script(gm)
        scripted(batch)
        return scripted

    def batching_metadata(self) -> Dict[str, str]:  # type: ignore[override]
        return {"float_features": "dense", "id_list_features": "sparse"}

    def result_metadata(self) -> str:
        return "dict_of_tensor"

    def run_weights_independent_tranformations(self, predict_module: torch.nn.Module) -> torch.nn.Module:
        return predict_module

    def run_weights_dependent_transformations(self, predict_module: torch.nn.Module) -> torch.nn.Module:
        return predict_module
