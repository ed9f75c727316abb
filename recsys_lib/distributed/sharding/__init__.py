"""Sharding strategies: one folder each (``dp_sharding/``, ``tw_sharding/``, ...), looked up through
``recsys_lib.distributed.sharding.strategy`` (``strategy_for(sharding_type)``)."""
