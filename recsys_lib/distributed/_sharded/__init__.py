"""The body shared by sharded ``EmbeddingBagCollection`` / ``EmbeddingCollection`` (private).

* ``table_types`` — compute kernels, sharded-table and grouped configs (public at ``embedding_types``).
* ``module_bases`` — sharder and sharded-module bases (public at ``embedding_types``).
* ``shard_tables`` — plan entries → table shards (pure).
* ``common`` — plan → shardings, table state.
* ``body`` — :class:`~recsys_lib.distributed._sharded.body.ShardedEmbeddingBody`, the composed value a sharded
  module builds in its ``__init__``, with its per-batch input: KJT checks (made before any collective, failing on
  every rank) and the split per sharding.
"""
