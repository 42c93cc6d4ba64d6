"""The end-to-end suites: a package, so that its modules (e2e.conftest, e2e.test_projects) are
named apart from the unit tests' for pytest and mypy."""
