"""Push mode: the collector posting each run's readings to its node's vmagent, its clock and what it logged."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from testbed.exposition import parse_metrics
from testbed.node import Node
from testbed.prometheus import PrometheusAPI

STAMPED = re.compile(r"readings stamped script=(\S+) timestamp_ms=(\d+) samples=(\d+)")


def push_url(node: Node) -> str:
    """The node-local vmagent's import endpoint, as the DaemonSet sets EDGE_PUSH_URL."""
    return f"http://{node.vmagent_address}/api/v1/import/prometheus"


def start_push_collector(
    node: Node, config: Path, *, clock_file: Path, spool_dir: Path | None = None, extra_args: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """The real collector in push mode with debug logs (each run's timestamp) and the clock read from `clock_file`
    (EDGE_CLOCK_TEST_FILE: this machine's own clock may not be synchronised)."""
    if not clock_file.exists():
        set_clock(clock_file, synchronized=True)
    args = ["--push-url", push_url(node), "--log-level", "debug", *extra_args]
    if spool_dir is not None:
        args += ["--spool-dir", str(spool_dir)]
    return node.start_collector(config=config, extra_args=args, env={"EDGE_CLOCK_TEST_FILE": str(clock_file)})


def set_clock(path: Path, *, synchronized: bool, offset: float = 0.0, esterror: float = 0.0) -> None:
    """What the collector's clock says from its next reading on (atomically: it reads the file at any time)."""
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(f"synchronized={int(synchronized)}\noffset_seconds={offset}\nesterror_seconds={esterror}\n")
    temp.rename(path)


def collector_stamps(node: Node, script: str = "counter") -> list[int]:
    """The timestamp (ms) the collector gave each run of `script`, in order, from its debug log."""
    log = node.workdir / "collector.log"
    text = log.read_text() if log.exists() else ""
    return [int(ms) for name, ms, _ in STAMPED.findall(text) if name == script]


def collector_self_metrics(node: Node) -> dict[str, float]:
    """The collector's own metrics from its textfile (exported in both modes)."""
    return parse_metrics((node.textfile_dir / "custom_metrics.prom").read_text())


def samples_at_centre(central: PrometheusAPI, selector: str, window: str = "1h") -> list[tuple[int, float]]:
    """(timestamp ms, value) of every raw sample at the centre matching `selector`, sorted by time."""
    return [(round(t * 1000), v) for t, v in central.raw_samples(selector, window)]
