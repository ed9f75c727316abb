"""Per-area lists of the public names and signatures recsys_lib promises (TorchRec's).

Each area module defines:

* ``NAMES``: ``[(module_path, name), ...]`` -- ``from module_path import name`` must work;
* ``SIGNATURES``: ``[(module_path, qualname, [(param, default), ...]), ...]`` -- the callable's leading
  parameters must have exactly these names and defaults (``REQUIRED`` for no default); extra trailing
  parameters are allowed, as in TorchRec's own signature-compatibility rule.

``tests/test_public_api.py`` collects every area module found here, so each area owns its own file.
"""

REQUIRED = object()
