"""Tests of the audit package: registry, runner, catalog, sources and checks."""
