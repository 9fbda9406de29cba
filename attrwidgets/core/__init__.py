"""Core: no ipywidgets/anywidget imports here, so scripts, tests and the CLI can use it alone."""
