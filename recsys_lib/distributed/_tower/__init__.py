"""Embedding-tower sharding: each tower (embedding module + interaction) placed on one host, its features sent
there and its outputs sent back (``embedding_tower_sharding.py``)."""
