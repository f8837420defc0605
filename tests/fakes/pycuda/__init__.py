"""Fake pycuda package (tests only); see tests/fakes/README.md."""
