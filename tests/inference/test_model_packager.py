import io

import pytest
from torch.package import PackageExporter, PackageImporter

from recsys_lib.inference.model_packager import (
    CONFIG_MODULE,
    LOADER_FACTORY,
    LOADER_MODULE,
    PredictFactoryPackager,
    load_config_text,
)
from tests.inference._packaged_factory import TinyFactory


class _Packager(PredictFactoryPackager):
    @classmethod
    def set_extern_modules(cls, pe: PackageExporter) -> None:
        pe.extern(["torch", "torch.**", "recsys_lib", "recsys_lib.**", "fbgemm_gpu", "fbgemm_gpu.**"])

    @classmethod
    def set_mocked_modules(cls, pe: PackageExporter) -> None:
        pe.mock(["numpy", "numpy.**"])


def test_save_predict_factory_round_trip():
    buf = io.BytesIO()
    _Packager.save_predict_factory(TinyFactory, {"name": "dlrm", "sizes": [1, 2, 3]}, buf,
                                   {"note.txt": "hello", "blob.bin": b"\x00\x01"})
    buf.seek(0)
    imp = PackageImporter(buf)
    factory_cls = getattr(imp.import_module(LOADER_MODULE), LOADER_FACTORY)
    assert factory_cls.__name__ == "TinyFactory" and factory_cls().result_metadata() == "dict_of_tensor"
    assert imp.load_text(CONFIG_MODULE, "name") == "dlrm"
    assert imp.load_pickle(CONFIG_MODULE, "sizes") == [1, 2, 3]
    assert imp.load_text("extra_files", "note.txt") == "hello"
    assert imp.load_binary("extra_files", "blob.bin") == b"\x00\x01"


def test_bad_extra_file_and_config_outside_a_package():
    with pytest.raises(ValueError, match="must be str or bytes"):
        _Packager.save_predict_factory(TinyFactory, {}, io.BytesIO(), {"x": 3})
    with pytest.raises(RuntimeError, match="only work inside code loaded from a torch.package"):
        load_config_text("name")
