"""Time zones change how times are shown, never the samples: they are epoch timestamps end to end."""

from __future__ import annotations

import datetime
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from testbed.counter import write_counter_config
from testbed.paths import EDGE_METRICS
from testbed.pipeline import Pipeline
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

SHANGHAI = {"TZ": "Asia/Shanghai"}
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})([+-]\d\d:\d\d) ")


class TestTimeZones:
    def test_collector_logs_carry_the_utc_offset_of_tz(self, tmp_path: Path) -> None:
        """A collector started with TZ=Asia/Shanghai stamps its log lines with +08:00, and the local
        time it shows is UTC + 8 hours."""
        config = write_counter_config(tmp_path, node="bupt-a", interval="1s")
        before = datetime.datetime.now(datetime.UTC)
        result = subprocess.run(
            [EDGE_METRICS, "run", "--once", "--config", config, "--node-name", "bupt-a", "--output", "-"],
            env={**os.environ, **SHANGHAI},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        lines = [line for line in result.stderr.splitlines() if line]
        assert lines, "the collector logged nothing"
        for line in lines:
            match = LOG_TIME.match(line)
            assert match, line
            assert match.group(2) == "+08:00", line
        shown = datetime.datetime.fromisoformat("".join(LOG_TIME.match(lines[0]).groups()))  # type: ignore[union-attr]
        assert abs((shown - before).total_seconds()) < 10

    def test_samples_at_the_centre_are_epoch_whatever_the_node_tz(self, pipeline: Callable[..., Pipeline]) -> None:
        """With the node's programs in Asia/Shanghai, the collector's write time (a value it computes)
        and the centre's timestamp of that sample agree: no 8-hour shift anywhere on the way."""
        stack = pipeline(node="bupt-a")
        stack.start_infrastructure()
        config = write_counter_config(stack.scripts_dir, node="bupt-a", interval="1s")
        stack.node.start_collector(config=config, env=SHANGHAI)
        samples = wait_until(
            lambda: stack.central.raw_samples('edge_collector_last_write_timestamp_seconds{node="bupt-a"}', "1m"),
            timeout=30,
            what="the collector's write time at the centre",
        )
        stamped, value = samples[-1]
        assert abs(stamped - value) < 5, f"sample at {stamped}, collector wrote at {value}"
