"""Decorators that customise a ``HardwarePerfConfig`` (TorchRec's ``planner.estimator.annotations``).

Class decorators set a config's hardware values::

    @hbm_mem_bw(2.0e9)
    @device_bw(5.0e8, device="cuda", compute_kernel="fused_uvm_caching")
    @supported_sharding_types("table_wise", "row_wise")
    class MyConfig(HardwarePerfConfig): ...

Method decorators mark a config method as the estimator's formula for one term, for every sharding
type or only the listed ones (bare, ``@forward_compute("row_wise")`` or ``@forward_compute(sharding_type=[...])``);
the methods take ``(ctx: ShardPerfContext)`` and return milliseconds (``output_write_size``: bytes).
``fwd_coefficient`` / ``bwd_coefficient`` / ``prefetch_coefficient`` mark methods returning coefficients.
The ``get_*`` functions find the marked method of a config (``None`` if it has none).
"""

from typing import Any, Callable, List, Optional, Type, TypeVar, Union

T = TypeVar("T")

_TYPE_ATTR = "_custom_sharding_type"
_COEF_TYPE_ATTR = "_coefficient_sharding_type"


def _types_of(sharding_type: Optional[Union[str, List[str]]]) -> Optional[List[str]]:
    if sharding_type is None:
        return None
    return [sharding_type] if isinstance(sharding_type, str) else list(sharding_type)


def _matches(method: Any, attr: str, sharding_type: Optional[str]) -> bool:
    wanted = getattr(method, attr, None)
    return sharding_type is None or wanted is None or sharding_type in wanted


def get_custom_method(
    obj: Any, method_name: str, annotation_attr: str, sharding_type: Optional[str] = None
) -> Optional[Callable[..., float]]:
    """``obj.method_name`` if it carries ``annotation_attr`` and applies to ``sharding_type``."""
    method = getattr(obj, method_name, None)
    if method is not None and getattr(method, annotation_attr, False) and _matches(method, _TYPE_ATTR, sharding_type):
        return method
    return None


def _find(config: Any, annotation_attr: str, sharding_type: Optional[str] = None, type_attr: str = _TYPE_ATTR) -> Any:
    """The first method of ``config`` (any name) marked with ``annotation_attr`` for ``sharding_type``;
    one restricted to that sharding type wins over an unrestricted one."""
    fallback = None
    for name in dir(type(config)):
        if name.startswith("__"):
            continue
        method = getattr(config, name, None)
        if not callable(method) or not getattr(method, annotation_attr, False):
            continue
        wanted = getattr(method, type_attr, None)
        if wanted is None:
            fallback = fallback or method
        elif sharding_type is not None and sharding_type in wanted:
            return method
    return fallback


def get_forward_compute(config: Any, sharding_type: Optional[str] = None) -> Optional[Callable[..., float]]:
    return _find(config, "_is_custom_forward_compute", sharding_type)


def get_backward_compute(config: Any, sharding_type: Optional[str] = None) -> Optional[Callable[..., float]]:
    return _find(config, "_is_custom_backward_compute", sharding_type)


def get_prefetch_compute(config: Any) -> Optional[Callable[..., float]]:
    return _find(config, "_is_custom_prefetch_compute")


def get_input_dist_comms(config: Any, sharding_type: Optional[str] = None) -> Optional[Callable[..., float]]:
    return _find(config, "_is_custom_input_dist_comms", sharding_type)


def get_fwd_comms(config: Any, sharding_type: Optional[str] = None) -> Optional[Callable[..., float]]:
    return _find(config, "_is_custom_fwd_comms", sharding_type)


def get_bwd_comms(config: Any, sharding_type: Optional[str] = None) -> Optional[Callable[..., float]]:
    return _find(config, "_is_custom_bwd_comms", sharding_type)


def get_output_write_size(config: Any, sharding_type: Optional[str] = None) -> Optional[Callable[..., float]]:
    return _find(config, "_is_custom_output_write_size", sharding_type)


def _class_value(attr: str, value: Any) -> Callable[[Type[T]], Type[T]]:
    def decorate(cls: Type[T]) -> Type[T]:
        setattr(cls, attr, value)
        return cls

    return decorate


def hbm_mem_bw(value: float) -> Callable[[Type[T]], Type[T]]:
    return _class_value("hbm_mem_bw", value)


def ddr_mem_bw(value: float) -> Callable[[Type[T]], Type[T]]:
    return _class_value("ddr_mem_bw", value)


def ssd_mem_bw(value: float) -> Callable[[Type[T]], Type[T]]:
    return _class_value("ssd_mem_bw", value)


def hbm_to_ddr_mem_bw(value: float) -> Callable[[Type[T]], Type[T]]:
    return _class_value("hbm_to_ddr_mem_bw", value)


def intra_host_bw(value: float) -> Callable[[Type[T]], Type[T]]:
    return _class_value("intra_host_bw", value)


def inter_host_bw(value: float) -> Callable[[Type[T]], Type[T]]:
    return _class_value("inter_host_bw", value)


def input_data_type_size(value: float) -> Callable[[Type[T]], Type[T]]:
    return _class_value("input_data_type_size", value)


def use_min_dim_for_lookup(value: bool = True) -> Callable[[Type[T]], Type[T]]:
    """Lookups read at least 32 columns per row (small dims pay for a minimum transfer)."""
    return _class_value("_use_min_dim_for_lookup", value)


def use_block_usage_penalty(value: bool = True) -> Callable[[Type[T]], Type[T]]:
    """Narrow shards (< 128 columns) pay the half/quarter block penalty."""
    return _class_value("_use_block_usage_penalty", value)


def use_bytes_for_input_read_size(value: bool = True) -> Callable[[Type[T]], Type[T]]:
    """Input read size counts bytes (ids x id bytes) instead of ids."""
    return _class_value("_use_bytes_for_input_read_size", value)


def device_bw(
    bandwidth: Optional[float] = None, *, device: Optional[str] = None, compute_kernel: Optional[Union[str, List[str]]] = None
) -> Callable[[Type[T]], Type[T]]:
    """Lookup bandwidth (bytes/ms): for every kernel, or (with ``device``/``compute_kernel``) for those only."""

    def decorate(cls: Type[T]) -> Type[T]:
        if device is None and compute_kernel is None:
            setattr(cls, "device_bw", bandwidth)
            return cls
        table = dict(getattr(cls, "kernel_device_bandwidths", {}) or {})
        for kernel in _types_of(compute_kernel) or [None]:
            table[(device, kernel)] = bandwidth
        setattr(cls, "kernel_device_bandwidths", table)
        return cls

    return decorate


def supported_sharding_types(*sharding_types: str) -> Callable[[Type[T]], Type[T]]:
    """The sharding types the config can rate (others raise in ``validate_sharding_type``)."""
    return _class_value("_supported_sharding_types", frozenset(sharding_types))


def _method_marker(attr: str) -> Callable[..., Any]:
    def marker(
        method_or_sharding_type: Optional[Union[Callable[..., float], str, List[str]]] = None,
        *,
        sharding_type: Optional[Union[str, List[str]]] = None,
    ) -> Any:
        def mark(method: Callable[..., float], types: Optional[List[str]]) -> Callable[..., float]:
            setattr(method, attr, True)
            setattr(method, _TYPE_ATTR, types)
            return method

        if callable(method_or_sharding_type):
            return mark(method_or_sharding_type, _types_of(sharding_type))
        types = _types_of(method_or_sharding_type if method_or_sharding_type is not None else sharding_type)
        return lambda method: mark(method, types)

    return marker


_forward_compute = _method_marker("_is_custom_forward_compute")
_backward_compute = _method_marker("_is_custom_backward_compute")
_input_dist_comms = _method_marker("_is_custom_input_dist_comms")
_fwd_comms = _method_marker("_is_custom_fwd_comms")
_bwd_comms = _method_marker("_is_custom_bwd_comms")
_output_write_size = _method_marker("_is_custom_output_write_size")


def forward_compute(
    method_or_sharding_type: Optional[Union[Callable[..., float], str, List[str]]] = None,
    *,
    sharding_type: Optional[Union[str, List[str]]] = None,
) -> Union[Callable[..., float], Callable[[Callable[..., float]], Callable[..., float]]]:
    """Marks the forward-compute formula ``(ctx) -> ms``."""
    return _forward_compute(method_or_sharding_type, sharding_type=sharding_type)


def backward_compute(
    method_or_sharding_type: Optional[Union[Callable[..., float], str, List[str]]] = None,
    *,
    sharding_type: Optional[Union[str, List[str]]] = None,
) -> Union[Callable[..., float], Callable[[Callable[..., float]], Callable[..., float]]]:
    """Marks the backward-compute formula ``(ctx) -> ms``."""
    return _backward_compute(method_or_sharding_type, sharding_type=sharding_type)


def input_dist_comms(
    method_or_sharding_type: Optional[Union[Callable[..., float], str, List[str]]] = None,
    *,
    sharding_type: Optional[Union[str, List[str]]] = None,
) -> Union[Callable[..., float], Callable[[Callable[..., float]], Callable[..., float]]]:
    """Marks the input-distribution (KJT all-to-all) formula ``(ctx) -> ms``."""
    return _input_dist_comms(method_or_sharding_type, sharding_type=sharding_type)


def fwd_comms(
    method_or_sharding_type: Optional[Union[Callable[..., float], str, List[str]]] = None,
    *,
    sharding_type: Optional[Union[str, List[str]]] = None,
) -> Union[Callable[..., float], Callable[[Callable[..., float]], Callable[..., float]]]:
    """Marks the forward output-communication formula ``(ctx) -> ms``."""
    return _fwd_comms(method_or_sharding_type, sharding_type=sharding_type)


def bwd_comms(
    method_or_sharding_type: Optional[Union[Callable[..., float], str, List[str]]] = None,
    *,
    sharding_type: Optional[Union[str, List[str]]] = None,
) -> Union[Callable[..., float], Callable[[Callable[..., float]], Callable[..., float]]]:
    """Marks the backward gradient-communication formula ``(ctx) -> ms``."""
    return _bwd_comms(method_or_sharding_type, sharding_type=sharding_type)


def output_write_size(
    method_or_sharding_type: Optional[Union[Callable[..., float], str, List[str]]] = None,
    *,
    sharding_type: Optional[Union[str, List[str]]] = None,
) -> Union[Callable[..., float], Callable[[Callable[..., float]], Callable[..., float]]]:
    """Marks the output-write-size formula ``(ctx) -> bytes``."""
    return _output_write_size(method_or_sharding_type, sharding_type=sharding_type)


def prefetch_compute(method: Callable[..., float]) -> Callable[..., float]:
    """Marks the prefetch-compute formula ``(ctx) -> ms`` (UVM caching kernels)."""
    setattr(method, "_is_custom_prefetch_compute", True)
    return method


def _coefficient_marker(attr: str, sharding_type: Optional[Union[str, List[str]]]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def mark(method: Callable[..., Any]) -> Callable[..., Any]:
        setattr(method, attr, True)
        setattr(method, _COEF_TYPE_ATTR, _types_of(sharding_type))
        return method

    return mark


def fwd_coefficient(sharding_type: Optional[Union[str, List[str]]] = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Marks a method returning the forward ``PerfCoefficient`` (for the listed sharding types or all)."""
    return _coefficient_marker("_is_fwd_coefficient", sharding_type)


def bwd_coefficient(sharding_type: Optional[Union[str, List[str]]] = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Marks a method returning the backward ``PerfCoefficient``."""
    return _coefficient_marker("_is_bwd_coefficient", sharding_type)


def prefetch_coefficient() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Marks a method returning the ``PrefetchCoefficients``."""
    return _coefficient_marker("_is_prefetch_coefficient", None)


def get_fwd_coefficient(config: Any, sharding_type: str) -> Optional[Any]:
    method = _find(config, "_is_fwd_coefficient", sharding_type, _COEF_TYPE_ATTR)
    return method() if method is not None else None


def get_bwd_coefficient(config: Any, sharding_type: str) -> Optional[Any]:
    method = _find(config, "_is_bwd_coefficient", sharding_type, _COEF_TYPE_ATTR)
    return method() if method is not None else None


def get_prefetch_coefficient(config: Any) -> Optional[Any]:
    method = _find(config, "_is_prefetch_coefficient", None, _COEF_TYPE_ATTR)
    return method() if method is not None else None
