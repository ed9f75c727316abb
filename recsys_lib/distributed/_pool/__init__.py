"""Private pieces of the sharded object pools: the plan types (``plan``) and the pure row-wise id math
(``rows``)."""
