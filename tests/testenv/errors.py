"""Errors of the test environment: a component that cannot be had fails loudly."""

from __future__ import annotations


class TestEnvError(Exception):
    """Base of every test-environment failure."""

    __test__ = False  # not a pytest test class


class BuildError(TestEnvError):
    """Obtaining or building a component failed."""


class StartError(TestEnvError):
    """A server did not become ready in time."""
