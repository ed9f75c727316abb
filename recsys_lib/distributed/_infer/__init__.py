"""Inference sharding of quantized collections on one host (private room; see ``quant_embeddingbag``)."""
