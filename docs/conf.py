"""Sphinx configuration of farl's documentation (MyST Markdown), built strictly by `bash scripts/test.sh`:

.venv/bin/sphinx-build -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

project = "farl"
author = "farl maintainers"
copyright = "farl maintainers, Apache-2.0"
release = "0.1.0"

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax"]
source_suffix = {".md": "markdown"}
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = "farl"

# The API reference imports farl's modules; their docstrings describe them, their signatures are typed.
autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_mock_imports = ["rclpy", "launch", "launch_ros", "ament_index_python", "message_filters"]
default_role = "code"  # docstrings write `name` for code, as Markdown does
autodoc_inherit_docstrings = False  # gymnasium's and torch's docstrings are theirs, in their own markup
suppress_warnings = ["ref.python"]  # attribute names such as `action` are defined in several classes
