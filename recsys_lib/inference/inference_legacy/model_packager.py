"""Legacy path of ``recsys_lib.inference.model_packager`` (same objects)."""

from recsys_lib.inference.model_packager import (  # noqa: F401
    CONFIG_MODULE,
    LOADER_CODE,
    LOADER_FACTORY,
    LOADER_MODULE,
    PredictFactoryPackager,
    load_config_text,
    load_pickle_config,
)
