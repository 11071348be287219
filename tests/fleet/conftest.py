from __future__ import annotations

import fcntl
from collections.abc import Iterator

import pytest

from tests.helpers import REPO

LOCK = REPO / ".cache" / "fleet.lock"


@pytest.fixture(autouse=True)
def one_fleet_at_a_time() -> Iterator[None]:
    """A fleet takes the machine's cores for its simulated nodes: under `pytest -n` (make test), fleets in other
    workers wait for this one, so that no two of them share the cores and measure each other's load."""
    LOCK.parent.mkdir(exist_ok=True)
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
