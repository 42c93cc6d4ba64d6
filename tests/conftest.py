"""Fixtures shared by the fast test suite."""

pytest_plugins = ["tests.registry_fixtures"]
