from tests.public_api import REQUIRED

NAMES = [
    ("recsys_lib", "DataType"),
    ("recsys_lib", "Multistreamable"),
    ("recsys_lib", "Pipelineable"),
    ("recsys_lib", "__version__"),
    ("recsys_lib", "github_version"),
    ("recsys_lib.types", "DataType"),
    ("recsys_lib.types", "CopyMixIn"),
    ("recsys_lib.types", "ModuleCopyMixin"),
    ("recsys_lib.types", "ModuleNoCopyMixin"),
    ("recsys_lib.types", "CacheMixin"),
    ("recsys_lib.streamable", "Multistreamable"),
    ("recsys_lib.streamable", "Pipelineable"),
]

SIGNATURES = [
    ("recsys_lib.streamable", "Pipelineable.to", [("self", REQUIRED), ("device", REQUIRED), ("non_blocking", REQUIRED)]),
    ("recsys_lib.streamable", "Multistreamable.record_stream", [("self", REQUIRED), ("stream", REQUIRED)]),
]

# torchrec's __init__ imports its distributed package, so `recsys_lib.distributed.X` works after `import recsys_lib`.
NAMES += [
    ("recsys_lib.distributed", "DistributedModelParallel"),
    ("recsys_lib.distributed", "get_local_size"),
    ("recsys_lib.distributed", "ShardingEnv"),
]

