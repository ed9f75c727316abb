"""Command-line preprocessing for Criteo (``python -m recsys_lib.datasets.scripts.<name> --help``)."""
