from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testbed.paths import EDGE_METRICS
from testbed.pipeline import Pipeline
from tests.helpers import COMPONENTS_ENV, Processes


@pytest.fixture
def pipeline(procs: Processes, tmp_path: Path) -> Callable[..., Pipeline]:
    """Build a centre + edge node from deploy/; every process it starts dies with the test."""
    if not COMPONENTS_ENV.exists() or not EDGE_METRICS.exists():
        pytest.fail("run `make venv components` first (make test does)")

    def build(**options: Any) -> Pipeline:
        return Pipeline(procs, tmp_path, **options)

    return build
