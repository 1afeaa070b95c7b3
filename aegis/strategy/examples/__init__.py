"""Example strategies shipped with aegis: examples of the API, not trading advice."""
