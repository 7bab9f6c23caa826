"""The benchmarks (`make bench`): `python -m tools.bench [NAME ...]`."""
