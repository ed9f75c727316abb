"""The body shared by sharded ``EmbeddingBagCollection`` / ``EmbeddingCollection`` (private).

* ``table_types`` — compute kernels, sharded-table and grouped configs, ``KJTList`` (public at ``embedding_types``).
* ``module_bases`` — sharder and sharded-module bases (public at ``embedding_types``).
* ``shard_tables`` — plan entries → table shards (pure).
* ``routing`` — input KJT checks (made before any collective) and the split per sharding.
* ``common`` — plan → shardings, table state.
* ``body`` — :class:`~recsys_lib.distributed._sharded.body.ShardedEmbeddingBody`, the composed value a sharded
  module builds in its ``__init__``.
"""
