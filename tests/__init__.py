"""The unit tests: a package, so that its modules (tests.conftest, tests.test_projects) are named
apart from the e2e suite's for pytest and mypy."""
