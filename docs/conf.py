"""Sphinx configuration for the recsys_lib site.

Build (warnings are errors)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Pages: ``index.rst`` (the toctree), ``api/<package>.rst`` (autodoc, one file per package), ``concepts/*.md``,
``tutorials/*.md`` (each includes a runnable script beside it), and the markdown notes in ``docs/*.md``.
"""

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
# Document the working tree's package, not an installed copy.
sys.path.insert(0, ROOT)

import recsys_lib  # noqa: E402

project = "recsys_lib"
author = "recsys_lib contributors"
copyright = "recsys_lib contributors"
version = release = recsys_lib.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # Google-style docstrings (Args:, Returns:, Example::)
    "sphinx.ext.viewcode",
    "myst_parser",  # the markdown pages: glossary, concepts, tutorials, notes written beside the code
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "requirements.txt", "build.sh", "tutorials/*.py"]

# -- autodoc ------------------------------------------------------------------------------------------------
# Module entries in api/*.rst are written with ``:no-members:``; each public name of a TorchRec-path face has its
# own autoclass / autofunction line (the faces re-export classes defined in private ``_x.py`` siblings, which
# ``automodule :members:`` would skip).
autodoc_default_options = {"members": True, "member-order": "bysource"}
# Document what recsys_lib wrote: a method without a docstring does not borrow torch's (nn.Module.forward, ...).
autodoc_inherit_docstrings = False
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_class_signature = "separated"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# -- markdown -----------------------------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# -- HTML ---------------------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"recsys_lib {release}"
html_static_path = []
