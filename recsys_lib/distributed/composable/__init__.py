"""Composable building blocks of sharded embedding modules."""
