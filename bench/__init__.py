"""Benchmarks of the intercloud agent in network namespaces: `python -m bench [--short]`."""
