from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import Processes, processes


@pytest.fixture
def procs() -> Iterator[Processes]:
    """Real processes, each in its own process group, all killed at teardown even when the test fails."""
    with processes() as group:
        yield group
