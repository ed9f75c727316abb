"""Distributed training: sharders, sharded modules, DistributedModelParallel, planner (torch.distributed engine)."""
