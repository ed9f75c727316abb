"""JSON serializers of embedding modules for ``torch.export`` (see ``recsys_lib.ir.utils``).

``JsonSerializer.module_to_serializer_cls`` maps ``qualname(module type)`` to its serializer:

    EmbeddingBagCollection                 EBCJsonSerializer     tables, is_weighted, device; shape-only forward
    FeatureProcessedEmbeddingBagCollection FPEBCJsonSerializer   processor kind; children encapsulated
    PositionWeightedModule(Collection)     PWM(C)JsonSerializer  max lengths
    KTRegroupAsDict                        KTRegroupAsDict...    groups, keys, emb_dtype; shape-only forward

Rebuilt modules take the parameters the unflattened program carries where names and shapes agree (TorchRec
rebuilds them freshly initialised; see docs/deviations.md), so an exported model round-trips with its weights.
"""

import json
import logging
from dataclasses import asdict
from typing import Any, Dict, List, Optional, Type

import torch
from torch import nn

from recsys_lib.ir.schema import (
    EBCMetadata,
    EmbeddingBagConfigMetadata,
    FPEBCMetadata,
    KTRegroupAsDictMetadata,
    PositionWeightedModuleCollectionMetadata,
    PositionWeightedModuleMetadata,
)
from recsys_lib.ir.types import SerializerInterface
from recsys_lib.ir.utils import qualname
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, PoolingType
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from recsys_lib.modules.feature_processor_ import (
    FeatureProcessor,
    FeatureProcessorsCollection,
    PositionWeightedModule,
    PositionWeightedModuleCollection,
)
from recsys_lib.modules.fp_embedding_modules import FeatureProcessedEmbeddingBagCollection
from recsys_lib.modules.regroup import KTRegroupAsDict
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor, KeyedTensor
from recsys_lib.types import DataType

logger: logging.Logger = logging.getLogger(__name__)


def embedding_bag_config_to_metadata(table_config: EmbeddingBagConfig) -> EmbeddingBagConfigMetadata:
    """``EmbeddingBagConfig`` → its JSON-able metadata (enums as values)."""
    return EmbeddingBagConfigMetadata(
        num_embeddings=table_config.num_embeddings,
        embedding_dim=table_config.embedding_dim,
        name=table_config.name,
        data_type=table_config.data_type.value,
        feature_names=list(table_config.feature_names),
        weight_init_max=table_config.weight_init_max,
        weight_init_min=table_config.weight_init_min,
        need_pos=table_config.need_pos,
        pooling=table_config.pooling.value,
    )


def embedding_metadata_to_config(table_config: EmbeddingBagConfigMetadata) -> EmbeddingBagConfig:
    """Metadata → ``EmbeddingBagConfig``."""
    return EmbeddingBagConfig(
        num_embeddings=table_config.num_embeddings,
        embedding_dim=table_config.embedding_dim,
        name=table_config.name,
        data_type=DataType(table_config.data_type),
        feature_names=list(table_config.feature_names),
        weight_init_max=table_config.weight_init_max,
        weight_init_min=table_config.weight_init_min,
        need_pos=table_config.need_pos,
        pooling=PoolingType(table_config.pooling),
    )


def get_deserialized_device(config_device: Optional[str], device: Optional[torch.device]) -> Optional[torch.device]:
    """``device`` if given (a warning when its type differs from the recorded one), else the recorded device."""
    if config_device:
        original = torch.device(config_device)
        if device is None:
            device = original
        elif original.type != device.type:
            logger.warning("deserialized device=%s overrides the original device=%s", device, original)
    return device


def _lookup_args(features: KeyedJaggedTensor) -> List[Optional[torch.Tensor]]:
    return [features.values(), features.weights_or_none(), features.lengths_or_none(), features.offsets_or_none()]


def ebc_meta_forward(ebc: EmbeddingBagCollection, features: KeyedJaggedTensor) -> KeyedTensor:
    """Shape-only EBC forward: a ``KeyedTensor`` of the EBC's keys and dims, ``(B, sum D)`` uninitialised."""
    dims = ebc._lengths_per_embedding
    outputs = torch.ops.recsys_lib.ir_emb_lookup(_lookup_args(features), features.stride(), dims)
    return KeyedTensor(keys=ebc._embedding_names, values=torch.cat(outputs, dim=1), length_per_key=dims)


def fpebc_meta_forward(fpebc: FeatureProcessedEmbeddingBagCollection, features: KeyedJaggedTensor) -> KeyedTensor:
    """Shape-only FP-EBC forward (as ``ebc_meta_forward`` for its EBC)."""
    return ebc_meta_forward(fpebc._embedding_bag_collection, features)  # type: ignore[arg-type]


def kt_regroup_meta_forward(op_module: KTRegroupAsDict, keyed_tensors: List[KeyedTensor]) -> Dict[str, torch.Tensor]:
    """Shape-only ``KTRegroupAsDict`` forward: ``{key: (B, sum of its group's dims)}``."""
    lengths: Dict[str, int] = {}
    for kt in keyed_tensors:
        lengths.update(zip(kt.keys(), kt.length_per_key()))
    out_lengths = [sum(lengths[k] for k in group) for group in op_module._groups]
    dtype = op_module._dtype if op_module._dtype is not None else keyed_tensors[0].values().dtype
    outputs = torch.ops.recsys_lib.ir_kt_regroup([kt.values() for kt in keyed_tensors],
                                                 keyed_tensors[0].values().size(0), out_lengths, dtype)
    return dict(zip(op_module._keys, outputs))


def _take_parameters(new: nn.Module, unflattened: Optional[nn.Module]) -> nn.Module:
    """Copy into ``new`` the tensors ``unflattened`` has under the same names and shapes (not onto meta)."""
    if unflattened is None:
        return new
    have = dict(unflattened.named_parameters())
    have.update(dict(unflattened.named_buffers()))
    with torch.no_grad():
        for name, t in list(new.named_parameters()) + list(new.named_buffers()):
            src = have.get(name)
            if src is None or src.shape != t.shape or t.device.type == "meta" or src.device.type == "meta":
                continue
            t.copy_(src.to(t.device, t.dtype))
    return new


class JsonSerializer(SerializerInterface):
    """Serializes modules to JSON bytes in an ``ir_metadata`` buffer; subclasses handle one module type each.

    A subclass sets ``_module_cls`` (and ``_children``: the children to encapsulate too), implements
    ``serialize_to_dict`` / ``deserialize_from_dict``, optionally ``swap_meta_forward``, and is registered under
    ``JsonSerializer.module_to_serializer_cls[qualname(module type)]``.
    """

    module_to_serializer_cls: Dict[str, Type["JsonSerializer"]] = {}  # type: ignore[assignment]
    _module_cls: Optional[Type[nn.Module]] = None
    _children: Optional[List[str]] = None
    _meta_forward: Optional[Any] = None

    @classmethod
    def children(cls, module: nn.Module) -> List[str]:
        return [] if not cls._children else list(cls._children)

    @classmethod
    def serialize_to_dict(cls, module: nn.Module) -> Dict[str, Any]:
        raise NotImplementedError(f"{cls.__name__} does not serialize modules (use a registered subclass)")

    @classmethod
    def deserialize_from_dict(cls, metadata_dict: Dict[str, Any], device: Optional[torch.device] = None,
                              unflatten_ep: Optional[nn.Module] = None) -> nn.Module:
        raise NotImplementedError(f"{cls.__name__} does not deserialize modules (use a registered subclass)")

    @classmethod
    def swap_meta_forward(cls, module: nn.Module) -> None:
        """Bind the serializer's shape-only forward (``_meta_forward``, if any) as ``module.forward``."""
        meta_forward = getattr(cls, "_meta_forward", None)  # a staticmethod: the plain function here
        if meta_forward is not None:
            module.forward = meta_forward.__get__(module, type(module))  # type: ignore[method-assign]

    @classmethod
    def _serializer_for(cls, typename: str) -> Type["JsonSerializer"]:
        serializer = cls.module_to_serializer_cls.get(typename)
        if serializer is None:
            raise ValueError(f"Expected typename to be one of {list(cls.module_to_serializer_cls)}, got {typename}")
        if serializer._module_cls is None:
            raise ValueError(f"{serializer.__name__} must set _module_cls to the nn.Module type it serializes")
        return serializer

    @classmethod
    def encapsulate_module(cls, module: nn.Module) -> List[str]:
        typename = qualname(module)
        serializer = cls._serializer_for(typename)
        if not isinstance(module, serializer._module_cls):  # type: ignore[arg-type]
            raise ValueError(f"Expected module to be of type {serializer._module_cls.__name__}, "  # type: ignore
                             f"got {type(module)}")
        raw = {"typename": typename, "metadata_dict": serializer.serialize_to_dict(module)}
        data = bytearray(json.dumps(raw).encode())
        module.register_buffer("ir_metadata", torch.frombuffer(data, dtype=torch.uint8), persistent=False)
        serializer.swap_meta_forward(module)
        return serializer.children(module)

    @classmethod
    def decapsulate_module(cls, module: nn.Module, device: Optional[torch.device] = None) -> nn.Module:
        raw = json.loads(module.get_buffer("ir_metadata").cpu().numpy().tobytes().decode())
        serializer = cls._serializer_for(raw["typename"])
        rebuilt = serializer.deserialize_from_dict(raw["metadata_dict"], device, module)
        if not isinstance(rebuilt, serializer._module_cls):  # type: ignore[arg-type]
            raise ValueError(f"Expected module to be of type {serializer._module_cls.__name__}, "  # type: ignore
                             f"got {type(rebuilt)}")
        return rebuilt


class EBCJsonSerializer(JsonSerializer):
    _module_cls = EmbeddingBagCollection
    _meta_forward = staticmethod(ebc_meta_forward)

    @classmethod
    def serialize_to_dict(cls, module: nn.Module) -> Dict[str, Any]:
        meta = EBCMetadata(
            tables=[embedding_bag_config_to_metadata(t) for t in module.embedding_bag_configs()],  # type: ignore
            is_weighted=module.is_weighted(),  # type: ignore[operator]
            device=str(module.device),
        )
        return asdict(meta)

    @classmethod
    def deserialize_from_dict(cls, metadata_dict: Dict[str, Any], device: Optional[torch.device] = None,
                              unflatten_ep: Optional[nn.Module] = None) -> nn.Module:
        tables = [embedding_metadata_to_config(EmbeddingBagConfigMetadata(**t)) for t in metadata_dict["tables"]]
        ebc = EmbeddingBagCollection(tables=tables, is_weighted=metadata_dict["is_weighted"],
                                     device=get_deserialized_device(metadata_dict.get("device"), device))
        return _take_parameters(ebc, unflatten_ep)


class PWMJsonSerializer(JsonSerializer):
    _module_cls = PositionWeightedModule

    @classmethod
    def serialize_to_dict(cls, module: nn.Module) -> Dict[str, Any]:
        return asdict(PositionWeightedModuleMetadata(max_feature_length=module.position_weight.shape[0]))

    @classmethod
    def deserialize_from_dict(cls, metadata_dict: Dict[str, Any], device: Optional[torch.device] = None,
                              unflatten_ep: Optional[nn.Module] = None) -> nn.Module:
        meta = PositionWeightedModuleMetadata(**metadata_dict)
        return _take_parameters(PositionWeightedModule(meta.max_feature_length, device), unflatten_ep)


class PWMCJsonSerializer(JsonSerializer):
    _module_cls = PositionWeightedModuleCollection

    @classmethod
    def serialize_to_dict(cls, module: nn.Module) -> Dict[str, Any]:
        # a list of pairs keeps the features' order through JSON
        pairs = [(f, n) for f, n in module.max_feature_lengths.items()]  # type: ignore[union-attr, operator]
        return asdict(PositionWeightedModuleCollectionMetadata(max_feature_lengths=pairs))

    @classmethod
    def deserialize_from_dict(cls, metadata_dict: Dict[str, Any], device: Optional[torch.device] = None,
                              unflatten_ep: Optional[nn.Module] = None) -> nn.Module:
        meta = PositionWeightedModuleCollectionMetadata(**metadata_dict)
        lengths = {f: n for f, n in meta.max_feature_lengths}
        return _take_parameters(PositionWeightedModuleCollection(lengths, device), unflatten_ep)


class FPEBCJsonSerializer(JsonSerializer):
    _module_cls = FeatureProcessedEmbeddingBagCollection
    _children = ["_feature_processors", "_embedding_bag_collection"]

    @classmethod
    def serialize_to_dict(cls, module: nn.Module) -> Dict[str, Any]:
        processors = module._feature_processors
        if isinstance(processors, FeatureProcessorsCollection):
            return asdict(FPEBCMetadata(is_fp_collection=True, features=[]))
        return asdict(FPEBCMetadata(is_fp_collection=False, features=list(processors.keys())))  # type: ignore

    @classmethod
    def deserialize_from_dict(cls, metadata_dict: Dict[str, Any], device: Optional[torch.device] = None,
                              unflatten_ep: Optional[nn.Module] = None) -> nn.Module:
        meta = FPEBCMetadata(**metadata_dict)
        if unflatten_ep is None:
            raise ValueError("FPEBCJsonSerializer rebuilds from the unflattened module's children; got none")
        if meta.is_fp_collection:
            processors: Any = unflatten_ep._feature_processors
            if not isinstance(processors, FeatureProcessorsCollection):
                raise ValueError(f"expected a FeatureProcessorsCollection, got {type(processors).__name__}")
        else:
            processors = {}
            for feature in meta.features:
                fp = getattr(unflatten_ep._feature_processors, feature)
                if not isinstance(fp, FeatureProcessor):
                    raise ValueError(f"feature {feature!r}: expected a FeatureProcessor, got {type(fp).__name__}")
                processors[feature] = fp
        ebc = unflatten_ep._embedding_bag_collection
        if not isinstance(ebc, EmbeddingBagCollection):
            raise ValueError(f"expected an EmbeddingBagCollection, got {type(ebc).__name__}")
        return FeatureProcessedEmbeddingBagCollection(ebc, processors)


class KTRegroupAsDictJsonSerializer(JsonSerializer):
    _module_cls = KTRegroupAsDict
    _meta_forward = staticmethod(kt_regroup_meta_forward)

    @classmethod
    def serialize_to_dict(cls, module: nn.Module) -> Dict[str, Any]:
        emb_dtype = module._emb_dtype
        meta = KTRegroupAsDictMetadata(keys=list(module._keys), groups=[list(g) for g in module._groups],  # type: ignore
                                       emb_dtype=emb_dtype.value if emb_dtype is not None else None)  # type: ignore
        return asdict(meta)

    @classmethod
    def deserialize_from_dict(cls, metadata_dict: Dict[str, Any], device: Optional[torch.device] = None,
                              unflatten_ep: Optional[nn.Module] = None) -> nn.Module:
        meta = KTRegroupAsDictMetadata(**metadata_dict)
        return KTRegroupAsDict(groups=meta.groups, keys=meta.keys,
                               emb_dtype=DataType(meta.emb_dtype) if meta.emb_dtype is not None else None)


JsonSerializer.module_to_serializer_cls[qualname(EmbeddingBagCollection)] = EBCJsonSerializer
JsonSerializer.module_to_serializer_cls[qualname(PositionWeightedModule)] = PWMJsonSerializer
JsonSerializer.module_to_serializer_cls[qualname(PositionWeightedModuleCollection)] = PWMCJsonSerializer
JsonSerializer.module_to_serializer_cls[qualname(FeatureProcessedEmbeddingBagCollection)] = FPEBCJsonSerializer
JsonSerializer.module_to_serializer_cls[qualname(KTRegroupAsDict)] = KTRegroupAsDictJsonSerializer
