"""Inference: quantise a trained model, package it, script / export it for serving (``torchrec.inference``)."""

from recsys_lib.inference import model_packager, modules  # noqa: F401
