"""Every import path, name and pinned signature that recsys_lib promises (TorchRec's, renamed).

The lists live per area in ``tests/public_api/<area>.py``; this file checks them all.
"""

import importlib
import inspect
import pkgutil

import pytest

import tests.public_api as specs
from tests.public_api import REQUIRED


def _areas():
    return [importlib.import_module(f"tests.public_api.{m.name}") for m in pkgutil.iter_modules(specs.__path__)]


NAMES = [(a.__name__.rsplit(".", 1)[1], mod, name) for a in _areas() for mod, name in getattr(a, "NAMES", [])]
SIGS = [(a.__name__.rsplit(".", 1)[1], mod, q, params) for a in _areas() for mod, q, params in getattr(a, "SIGNATURES", [])]


def _resolve(module_path, qualname):
    obj = importlib.import_module(module_path)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("area,module_path,name", NAMES, ids=[f"{m}.{n}" for _, m, n in NAMES])
def test_name_importable(area, module_path, name):
    module = importlib.import_module(module_path)
    assert hasattr(module, name), f"{module_path} does not export {name!r} (area {area})"


@pytest.mark.parametrize("area,module_path,qualname,params", SIGS, ids=[f"{m}.{q}" for _, m, q, _ in SIGS])
def test_signature(area, module_path, qualname, params):
    obj = _resolve(module_path, qualname)
    target = obj.__init__ if inspect.isclass(obj) else obj
    sig = inspect.signature(target)
    got = list(sig.parameters.values())
    if inspect.isclass(obj):
        got = got[1:]  # drop self of __init__
    assert len(got) >= len(params), f"{qualname}: expected at least {[p for p, _ in params]}, got {[p.name for p in got]}"
    for (name, default), actual in zip(params, got):
        assert actual.name == name, f"{qualname}: parameter {actual.name!r} where {name!r} was expected"
        if default is REQUIRED:
            assert actual.default is inspect.Parameter.empty, f"{qualname}({name}) must have no default"
        else:
            assert actual.default is not inspect.Parameter.empty, f"{qualname}({name}) needs default {default!r}"
            assert actual.default == default or (actual.default is default), (
                f"{qualname}({name}) default {actual.default!r}, expected {default!r}"
            )
    # TorchRec's rule: parameters past the pinned ones must be optional.
    for extra in got[len(params):]:
        assert extra.default is not inspect.Parameter.empty or extra.kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ), f"{qualname}: extra parameter {extra.name!r} must have a default"


def test_specs_are_not_empty():
    assert len(NAMES) > 5 and len(SIGS) > 0


def test_import_brings_the_distributed_package():
    # torchrec's __init__ imports torchrec.distributed: `recsys_lib.distributed.X` must work after `import recsys_lib`.
    import subprocess
    import sys

    code = "import recsys_lib, sys; assert 'recsys_lib.distributed.model_parallel' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
