"""Fixtures for the SSH layer's tests: a connector for the test sshd, and every connector a test
made closed after it, so no SSH session outlives its test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from imageserving_fleet.fleet.ssh import Connector
from imageserving_fleet.fleet.target import FleetOptions


@pytest.fixture(autouse=True)
def _close_every_connector(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Closes every Connector a test made, so no SSH session outlives its test."""
    made: list[Connector] = []
    original = Connector.__init__

    def tracking(self: Connector, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(Connector, "__init__", tracking)
    yield
    for connector in made:
        connector.close()


@pytest.fixture
def connector(fleet_options: FleetOptions) -> Connector:
    return Connector(fleet_options)
