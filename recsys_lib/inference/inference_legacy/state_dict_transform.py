"""Legacy path of ``recsys_lib.inference.state_dict_transform`` (same objects)."""

from recsys_lib.distributed._checkpoint.gather import state_dict_all_gather_keys, state_dict_gather  # noqa: F401
from recsys_lib.inference.state_dict_transform import state_dict_to_device  # noqa: F401
