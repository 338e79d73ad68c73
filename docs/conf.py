"""Sphinx configuration of the jax_lrn documentation.

Build: ``python -m sphinx -W -b html docs docs/_build/html``; run the pages' examples:
``python -m sphinx -W -b doctest docs docs/_build/doctest``.
"""

import jax_lrn

project = "jax_lrn"
author = "jax_lrn contributors"
release = version = jax_lrn.__version__

extensions = [
  "myst_parser",
  "sphinx.ext.autodoc",
  "sphinx.ext.napoleon",
  "sphinx.ext.doctest",
  "sphinx.ext.mathjax",
  # MathJax 3 itself, copied into the built site (_static/mathjax/): formulas render offline and
  # behind a firewall, with no script loaded from a CDN (tests/test_checks.py checks the HTML).
  "sphinx-mathjax-offline",
]
mathjax_path = "mathjax/tex-chtml.js"

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]

# Google-style docstrings (Args / Returns / Raises / Examples), as in the source.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_default_options = {"members": True, "special-members": "__call__"}

# MyST: $...$ math, and anchors for section links within and across pages.
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

# sphinx.ext.doctest runs the pages' {doctest} blocks (the docstrings' examples run under
# pytest --doctest-modules instead, so plain >>> blocks are not collected twice).
doctest_test_doctest_blocks = ""

html_theme = "sphinx_book_theme"
html_title = f"jax_lrn {release}"
html_theme_options = {
  "show_toc_level": 2,
  "home_page_in_toc": True,
}
