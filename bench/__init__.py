"""Benchmarks (``make bench``); shared helpers live in :mod:`bench.common`."""
