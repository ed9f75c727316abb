"""Single-device modules: embedding collections, feature processors, MLP / cross / FM layers.

Importing the package imports its submodules, as ``torchrec.modules`` does, so that
``recsys_lib.modules.embedding_modules.EmbeddingBagCollection`` resolves after ``import recsys_lib``.
"""

# Order matters: configs first, then the modules built on them.
from recsys_lib.modules import embedding_configs  # noqa: F401  # usort: skip
from recsys_lib.modules import (  # noqa: F401
    activation,
    crossnet,
    deepfm,
    embedding_modules,
    embedding_tower,
    feature_processor,
    lazy_extension,
    mlp,
)
