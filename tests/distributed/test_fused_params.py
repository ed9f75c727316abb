import pytest
from fbgemm_gpu.split_table_batched_embeddings_ops_common import BoundsCheckMode

from recsys_lib.distributed import fused_params as fpm


def test_constants_are_torchrecs_strings():
    assert fpm.FUSED_PARAM_REGISTER_TBE_BOOL == "__register_tbes_in_named_modules"
    assert fpm.FUSED_PARAM_QUANT_STATE_DICT_SPLIT_SCALE_BIAS == "__register_quant_state_dict_split_scale_bias"
    assert fpm.FUSED_PARAM_TBE_ROW_ALIGNMENT == "__register_tbe_row_alignment"
    assert fpm.FUSED_PARAM_BOUNDS_CHECK_MODE == "__register_tbe_bounds_check_mode"
    assert fpm.FUSED_PARAM_LENGTHS_TO_OFFSETS_LOOKUP == "__register_lengths_to_offsets_lookup"


def test_readers_default_and_set():
    assert not fpm.is_fused_param_register_tbe(None) and not fpm.is_fused_param_register_tbe({})
    assert fpm.is_fused_param_register_tbe({fpm.FUSED_PARAM_REGISTER_TBE_BOOL: True})
    assert fpm.is_fused_param_quant_state_dict_split_scale_bias({fpm.FUSED_PARAM_QUANT_STATE_DICT_SPLIT_SCALE_BIAS: True})
    assert not fpm.is_fused_param_quant_state_dict_split_scale_bias({"learning_rate": 0.1})
    assert fpm.get_fused_param_tbe_row_alignment(None) is None
    assert fpm.get_fused_param_tbe_row_alignment({fpm.FUSED_PARAM_TBE_ROW_ALIGNMENT: 16}) == 16
    with pytest.raises(ValueError, match="positive int"):
        fpm.get_fused_param_tbe_row_alignment({fpm.FUSED_PARAM_TBE_ROW_ALIGNMENT: 0})
    assert fpm.fused_param_bounds_check_mode({}) is None
    mode = fpm.fused_param_bounds_check_mode({fpm.FUSED_PARAM_BOUNDS_CHECK_MODE: BoundsCheckMode.FATAL})
    assert mode == BoundsCheckMode.FATAL
    assert fpm.fused_param_lengths_to_offsets_lookup({fpm.FUSED_PARAM_LENGTHS_TO_OFFSETS_LOOKUP: True})
    assert not fpm.fused_param_lengths_to_offsets_lookup(None)


def test_tbe_fused_params_strips_private_keys_without_mutating():
    fp = {"learning_rate": 0.1, fpm.FUSED_PARAM_REGISTER_TBE_BOOL: True, fpm.FUSED_PARAM_BOUNDS_CHECK_MODE: None,
          fpm.FUSED_PARAM_TBE_ROW_ALIGNMENT: 8, fpm.FUSED_PARAM_IS_SSD_TABLE: False}
    assert fpm.tbe_fused_params(fp) == {"learning_rate": 0.1}
    assert len(fp) == 5
    assert fpm.tbe_fused_params(None) is None


def test_tbes_to_register_from_iterable():
    class Holder(fpm.TBEToRegisterMixIn):
        def __init__(self, tbes):
            self.tbes = tbes

        def get_tbes_to_register(self):
            return self.tbes

    a, b = object(), object()
    got = fpm.get_tbes_to_register_from_iterable([Holder({a: "ga"}), "not a holder", Holder({b: "gb"})])
    assert got == {a: "ga", b: "gb"}
    with pytest.raises(NotImplementedError):
        fpm.TBEToRegisterMixIn().get_tbes_to_register()
