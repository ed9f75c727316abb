"""Operator families used by the sparse types: a plain-PyTorch reference and the FBGEMM fast path in each file.

Each family exposes ``<op>_reference`` (readable torch), ``<op>_fbgemm`` (FBGEMM, when it has the op) and
``<op>`` (the dispatch the library calls). Tests run every variant against the reference.
"""

from recsys_lib.ops._fbgemm import fbgemm_available  # noqa: F401
