"""Benchmarks: each prints its figures against a peer or ceiling measured in the same run."""
