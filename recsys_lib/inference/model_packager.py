"""Packaging a ``PredictFactory`` with its configs into a ``torch.package`` archive for a serving host.

Inside the archive: ``__module_loader`` (source naming the factory class as ``MODULE_FACTORY``), ``__configs/<name>``
(text or pickled configs), ``extra_files/<name>``, and the factory's module and its interned dependencies. Code
running inside the package reads its configs back with :func:`load_config_text` / :func:`load_pickle_config`.
"""

import abc
from pathlib import Path
from typing import Any, BinaryIO, Dict, List, Type, TypeVar, Union

import torch
from torch.package import PackageExporter

from recsys_lib.inference.modules import PredictFactory

LOADER_MODULE = "__module_loader"
LOADER_FACTORY = "MODULE_FACTORY"
LOADER_CODE = "\nimport %PACKAGE%\n\n" + LOADER_FACTORY + "=%PACKAGE%.%CLASS%\n"
CONFIG_MODULE = "__configs"

T = TypeVar("T")


def _package_importer() -> Any:
    # Code loaded from a torch.package can import its importer as ``torch_package_importer`` (this module must be
    # interned in the package for that; elsewhere the import fails).
    try:
        import torch_package_importer  # type: ignore[import-not-found]
    except ImportError:
        raise RuntimeError(
            "load_config_text / load_pickle_config only work inside code loaded from a torch.package"
        ) from None
    return torch_package_importer


def load_config_text(name: str) -> str:
    """A text config saved by :meth:`PredictFactoryPackager.save_predict_factory` (inside the package only)."""
    return _package_importer().load_text(CONFIG_MODULE, name)


def load_pickle_config(name: str, clazz: Type[T]) -> T:
    """A pickled config, checked to be a ``clazz`` (inside the package only)."""
    obj = _package_importer().load_pickle(CONFIG_MODULE, name)
    if not isinstance(obj, clazz):
        raise TypeError("config '" + name + "' is a " + type(obj).__name__ + ", expected " + clazz.__name__)
    return obj


class PredictFactoryPackager:
    """Subclass it, say which modules stay outside the package (``set_extern_modules``) or are mocked
    (``set_mocked_modules``), then call :meth:`save_predict_factory`."""

    @classmethod
    @abc.abstractmethod
    def set_extern_modules(cls, pe: PackageExporter) -> None:
        pass

    @classmethod
    @abc.abstractmethod
    def set_mocked_modules(cls, pe: PackageExporter) -> None:
        pass

    @classmethod
    def save_predict_factory(
        cls,
        predict_factory: Type[PredictFactory],
        configs: Dict[str, Any],
        output: Union[str, Path, BinaryIO],
        extra_files: Dict[str, Union[str, bytes]],
        loader_code: str = LOADER_CODE,
        package_importer: Union[torch.package.Importer, List[torch.package.Importer]] = torch.package.sys_importer,
    ) -> None:
        """Write ``predict_factory`` (its module interned), ``configs`` and ``extra_files`` to ``output``."""
        with PackageExporter(output, importer=package_importer) as pe:
            cls.set_extern_modules(pe)
            cls.set_mocked_modules(pe)
            pe.extern(["sys"])
            pe.intern("**")
            for name, value in extra_files.items():
                if isinstance(value, str):
                    pe.save_text("extra_files", name, value)
                elif isinstance(value, bytes):
                    pe.save_binary("extra_files", name, value)
                else:
                    raise ValueError("extra file '" + name + "' must be str or bytes, got " + type(value).__name__)
            cls._save_predict_factory(pe, predict_factory, configs, loader_code=loader_code)

    @classmethod
    def _save_predict_factory(
        cls,
        pe: PackageExporter,
        predict_factory: Type[PredictFactory],
        configs: Dict[str, Any],
        loader_code: str = LOADER_CODE,
    ) -> None:
        package = predict_factory.__module__
        if package.startswith("<torch_package_"):
            package = package.split(".", 1)[1]
        pe.save_source_string(
            module_name=LOADER_MODULE,
            src=loader_code.replace("%PACKAGE%", package).replace("%CLASS%", predict_factory.__name__),
        )
        for name, config in configs.items():
            if isinstance(config, str):
                pe.save_text(CONFIG_MODULE, name, config)
            else:
                pe.save_pickle(CONFIG_MODULE, name, config)
        pe.save_module(predict_factory.__module__)
