"""The benchmarks (not part of the attrwidgets package): one folder per family, the peer tools' runners in
external/, and what they share in harness.py; see README.md here. The family folders are namespace packages
(no __init__.py), so that benchmarks/token/ never shadows the standard library's `token` module when a script
at this level (gpu_check.py) runs with this folder first on sys.path."""
