"""Markers every test directory shares.

``server``: the test starts a service process (it uses a fixture that does: ``start_service`` of
tests/service, ``start_server`` of tests/browser, or one built on them, such as ``service``). Set
here from each test's fixtures, so that a new test is marked by what it uses; ``make test-fast``
leaves these tests out, ``make test`` runs them.
"""

import pytest

SERVER_FIXTURES = frozenset({"start_service", "start_server"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "server: starts a service process (set from the test's fixtures)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.server)
