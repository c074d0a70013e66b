"""Sphinx configuration of spinfast's documentation (Markdown pages through myst-parser).

Build: ``sphinx-build -W docs OUT`` (``pip install '.[docs]'``; CI installs the same tools).
The API reference imports the public modules: with spinfast installed it documents that
installation; without it, the source tree, with the compiled modules mocked.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from sphinx.util import logging

_HERE = os.path.dirname(os.path.abspath(__file__))
_SRC = os.path.join(os.path.dirname(_HERE), "src")

try:
    import spinfast  # an installed spinfast (CI, a developer's venv)
except ImportError:  # a docs-only environment: read the source tree
    sys.path.insert(0, _SRC)
    import spinfast

_COMPILED = ["spinfast._stats", "spinfast._flat", "spinfast._tbevent"]
# Heavy or optional imports the public modules make: mocked only where they are missing, so an
# environment with them documents the real objects.
autodoc_mock_imports = [
    name for name in ("numpy", "tensorflow", "torch", "mpi4py", "pandas", "seaborn",
                      "matplotlib", "gymnasium", "submitit", "wandb", "joblib", "cloudpickle",
                      "tqdm", *_COMPILED)
    if importlib.util.find_spec(name.partition(".")[0]) is None
    or (name in _COMPILED and importlib.util.find_spec(name) is None)
]

project = "spinfast"
author = "the spinfast developers"
copyright = "2026, the spinfast developers"
version = release = spinfast.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinxcontrib.mermaid",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_fence_as_directive = ["mermaid"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = f"spinfast {release}"

# automodule :members: follows each module's __all__; undoc-members lists every public name,
# so that a public function or class without a docstring is seen (and warned about below).
autodoc_default_options = {"members": True, "undoc-members": True, "member-order": "bysource"}
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = True
napoleon_use_ivar = True  # "Attributes:" as fields: undoc-members already lists each one

_log = logging.getLogger("spinfast.docs")
_NEEDS_DOC = {"function", "class", "exception", "method"}


def _warn_undocumented(app, what, name, obj, options, lines):
    """Warn (an error under -W) about a public function, class or method without a docstring."""
    if what not in _NEEDS_DOC or lines:
        return
    if any(part.startswith("_") for part in name.split(".")):
        return
    _log.warning("%s %s has no docstring", what, name, type="spinfast", subtype="docstring")


def setup(app):
    app.connect("autodoc-process-docstring", _warn_undocumented)
