"""Single-device modules: embedding collections, feature processors, MLP / cross / FM layers.

Importing the package imports its submodules, as ``torchrec.modules`` does, so that
``recsys_lib.modules.embedding_modules.EmbeddingBagCollection`` resolves after ``import recsys_lib``.
"""

import importlib
import importlib.util

# Order matters: configs first, then the modules built on them.
for _name in (
    "embedding_configs",
    "activation",
    "mlp",
    "crossnet",
    "deepfm",
    "embedding_modules",
    "feature_processor",
    "embedding_tower",
    "lazy_extension",
):
    # Guard only against a submodule that is not written yet; errors inside an existing one propagate.
    if importlib.util.find_spec(f"{__name__}.{_name}") is not None:
        importlib.import_module(f"{__name__}.{_name}")
del _name
