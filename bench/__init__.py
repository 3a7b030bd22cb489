"""Benchmarks: speed figures, kept apart from the tests (run with python -m bench.<name>)."""
