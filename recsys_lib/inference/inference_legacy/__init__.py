"""TorchRec's legacy inference package path (``torchrec.inference.inference_legacy``): model packaging and
state-dict transforms, the same functions as ``recsys_lib.inference.model_packager`` /
``recsys_lib.inference.state_dict_transform``."""

from recsys_lib.inference.inference_legacy import model_packager  # noqa: F401
