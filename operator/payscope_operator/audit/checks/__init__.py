"""Checks, one module per audit dimension (A to G), each declared with ``registry.check``."""
