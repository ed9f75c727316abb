#!/usr/bin/env bash
# Build the documentation site into docs/_build/html, warnings as errors.
#
#   .venv/bin/pip install -r docs/requirements.txt     # once: sphinx, myst-parser, furo
#   PYTHON=.venv/bin/python docs/build.sh               # or: python -m sphinx -W --keep-going -b html docs docs/_build/html
#
# The API pages import recsys_lib from this checkout (docs/conf.py puts the repository first on sys.path).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" -m sphinx -W --keep-going -b html docs docs/_build/html "$@"
