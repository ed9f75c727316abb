"""GRID sharding strategy: layout math now; pooled / sequence / inference classes land with the sharded modules."""
