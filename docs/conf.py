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
exclude_patterns = ["_build"]

# -- autodoc ------------------------------------------------------------------------------------------------
# Module entries in api/*.rst are written with ``:no-members:``; each public name of a TorchRec-path face has its
# own autoclass / autofunction line (the faces re-export classes defined in private ``_x.py`` siblings, which
# ``automodule :members:`` would skip).
autodoc_default_options = {"members": True, "member-order": "bysource"}
# Document what recsys_lib wrote: a method without a docstring does not borrow torch's (nn.Module.forward, ...).
autodoc_inherit_docstrings = False
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
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


# -- links from markdown notes to repository files ----------------------------------------------------------
# Notes written beside the code link to source files and folders (``../recsys_lib/distributed/sharding/``) and to
# ``../README.md``, which work when the markdown is read in the repository but are not pages of this site. Such a
# link is rendered as its text when (and only when) its target exists in the repository; a link to a path that
# exists nowhere still fails the build.
from docutils import nodes  # noqa: E402
from sphinx import addnodes  # noqa: E402
from sphinx.transforms.post_transforms import SphinxPostTransform  # noqa: E402


class RepositoryPathLinks(SphinxPostTransform):
    default_priority = 8  # before myst's reference resolver (9), which would warn

    def run(self, **kwargs):
        srcdir = os.path.abspath(str(self.env.srcdir))
        for node in list(self.document.findall(addnodes.pending_xref)):
            if node.get("reftype") != "myst" or not node.children:
                continue
            target = node.get("reftarget") or ""
            if node.get("refdomain") == "doc":
                if target in self.env.all_docs:
                    continue
                base = target if os.path.isabs(target) else os.path.join(srcdir, target)
                candidates = [base] + [base + suffix for suffix in source_suffix]
            else:
                refdoc = node.get("refdoc", self.env.docname)
                candidates = [os.path.join(srcdir, os.path.dirname(refdoc), target.split("#", 1)[0])]
            for path in map(os.path.normpath, candidates):
                inside_repo = path == ROOT or path.startswith(ROOT + os.sep)
                outside_site = not path.startswith(srcdir + os.sep) or os.path.isdir(path)
                if inside_repo and outside_site and os.path.exists(path):
                    node.replace_self(node.children[0].deepcopy())
                    break


def setup(app):
    app.add_post_transform(RepositoryPathLinks)
    return {"parallel_read_safe": True}
