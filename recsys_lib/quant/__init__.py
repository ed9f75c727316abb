"""Quantized embedding collections for inference (``torchrec.quant``).

``recsys_lib.quant.EmbeddingBagCollection.from_float(ebc)`` turns a float collection with a ``qconfig`` into one
whose tables are stored INT8 / INT4 / INT2 (row-wise, fp16 scale and bias) or FP16 / FP32 in FBGEMM's
inference-TBE layout; ``recsys_lib.inference.modules.quantize_embeddings`` does it for a whole model.
"""

from recsys_lib.quant.embedding_modules import EmbeddingBagCollection  # noqa: F401
