"""Process-wide switches that TorchRec's public API sets by function call.

TorchRec keeps these as bare module globals. Here they are fields of one ``_ProcessSettings``
object, the single place in ``recsys_lib.distributed`` that holds process-wide state; everything
else (process groups, counters, per-call options) is passed explicitly. Code that needs a switch
reads it once, when the step is built or issued (e.g. a collective stores the gradient-division
flag at forward time), so flipping a switch never changes a step already in flight.
"""

from dataclasses import dataclass


@dataclass
class _ProcessSettings:
    propagate_device: bool = False
    gradient_division: bool = True
    use_sync_collectives: bool = False
    collective_validation: bool = False
    collective_validation_initialized: bool = False
    ec_index_dedup: bool = False


_SETTINGS = _ProcessSettings()


def set_propogate_device(val: bool) -> None:
    """When True, quantized sharding places its kernels on the sharding device (spelling as TorchRec's)."""
    _SETTINGS.propagate_device = bool(val)


def get_propogate_device() -> bool:
    """Current value of the propagate-device switch (default False)."""
    return _SETTINGS.propagate_device


def process_settings() -> _ProcessSettings:
    """The settings object (read by ``comm_ops`` for gradient division and sync collectives)."""
    return _SETTINGS
