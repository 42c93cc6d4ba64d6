"""Fixtures shared by the fast test suite."""

pytest_plugins = ["registry_fixtures"]
