"""fx tracing that understands the jagged types (``torchrec.fx``)."""

from recsys_lib.fx.tracer import Tracer, is_fx_tracing, symbolic_trace  # noqa: F401
