from tests.public_api import REQUIRED

NAMES = [
    ("recsys_lib", "fx"),
    ("recsys_lib.fx", "Tracer"),
    ("recsys_lib.fx", "symbolic_trace"),
    ("recsys_lib.fx.tracer", "Tracer"),
    ("recsys_lib.fx.tracer", "symbolic_trace"),
    ("recsys_lib.fx.tracer", "is_fx_tracing"),
    ("recsys_lib.fx.utils", "fake_range"),
    ("recsys_lib.fx.utils", "dmp_fx_trace_forward"),
    ("recsys_lib.fx.utils", "fx_marker"),
    ("recsys_lib.fx.utils", "is_marker_node"),
    ("recsys_lib.fx.utils", "assert_fx_safe"),
]

SIGNATURES = [
    ("recsys_lib.fx.tracer", "Tracer", [("leaf_modules", None)]),
    ("recsys_lib.fx.tracer", "Tracer.trace", [("self", REQUIRED), ("root", REQUIRED), ("concrete_args", None)]),
    ("recsys_lib.fx.tracer", "symbolic_trace", [("root", REQUIRED), ("concrete_args", None), ("leaf_modules", None)]),
]
