"""2-D parallelism (``DMPCollection``): sharding groups x replica groups, their environment, plan remapping,
shard placements on global ranks and the replica weight sync."""
