"""What the integration tests share: a config directory with real bash scripts, the real `edge-metrics` command,
and ways to look at what a user sees (the metrics file through prometheus_client's parser, the log, /proc)."""

from __future__ import annotations

import os
import re
import subprocess
import textwrap
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import EDGE_METRICS, REPO, Processes, SeriesKey, parse_exposition, wait_until, write_script

PYTHON = REPO / ".venv" / "bin" / "python"
# `2026-11-25T17:00:00.123+08:00 LEVEL message key=value`
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) \S")
# The families every file the collector writes carries, whatever the scripts print.
ALWAYS_WRITTEN = (
    "edge_collector_info",
    "edge_collector_config_last_reload_successful",
    "edge_collector_last_write_timestamp_seconds",
    "edge_collector_textfile_write_failures_total",
)

SESSION_MARKER = f"edge-it-{os.getpid()}-"  # every marker of this pytest session starts with it
MARKER_VARIABLE = "EDGE_IT_MARKER"


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any EDGE_* or NODE_NAME leaking in, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_") and k != "NODE_NAME"}
    env.update(extra)
    return env


@dataclass
class Setup:
    """A node's config directory (nodes.conf + scripts side by side) and where the collector writes."""

    root: Path
    node: str = "node-1"
    # Put in the collector's environment (so every script process inherits it) and in scripts' command lines.
    marker: str = field(default_factory=lambda: f"{SESSION_MARKER}{uuid.uuid4().hex[:12]}")

    @property
    def conf_dir(self) -> Path:
        return self.root / "conf"

    @property
    def config(self) -> Path:
        return self.conf_dir / "nodes.conf"

    @property
    def output(self) -> Path:
        return self.root / "textfile" / "custom_metrics.prom"

    @property
    def log(self) -> Path:
        return self.root / "collector.log"

    def argv(self, *extra: str | os.PathLike[str]) -> list[str]:
        return [str(EDGE_METRICS), "run", "--config", str(self.config), "--node-name", self.node,
                "--output", str(self.output), *(str(e) for e in extra)]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def log_lines(self, needle: str) -> list[str]:
        return [line for line in self.log_text().splitlines() if needle in line]


class ConfigMapVolume:
    """A directory laid out the way the kubelet lays out a ConfigMap volume, updated the way it updates one
    (pkg/volume/util/atomic_writer.go): a new timestamped directory, the `..data` symlink swapped to it with a
    rename, then the per-key symlinks of new keys created and those of removed keys deleted, then the old
    directory removed."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True)
        self.generation = 0

    def publish(self, nodes_conf: str, scripts: Mapping[str, str], raw: Mapping[str, bytes] | None = None) -> None:
        """`scripts`: bodies after the `#!/bin/bash` line; `raw`: whole files, byte for byte."""
        self.generation += 1
        payload = self.dir / f"..2026_11_25_17_00_{self.generation:02d}.{os.getpid()}{self.generation}"
        payload.mkdir()
        (payload / "nodes.conf").write_text(nodes_conf)
        for name, body in scripts.items():
            write_script(payload, name, body)
        for name, content in (raw or {}).items():
            (payload / f"{name}.sh").write_bytes(content)
        keys = {"nodes.conf", *(f"{name}.sh" for name in [*scripts, *(raw or {})])}
        data = self.dir / "..data"
        old_payload = os.readlink(data) if data.is_symlink() else None
        temp = self.dir / "..data_tmp"
        temp.symlink_to(payload.name)
        os.rename(temp, data)  # the atomic switch
        for key in keys:
            link = self.dir / key
            if not link.is_symlink():
                link.symlink_to(f"..data/{key}")
        for link in self.dir.iterdir():
            if not link.name.startswith("..") and link.name not in keys:
                link.unlink()
        if old_payload is not None:
            for file in (self.dir / old_payload).iterdir():
                file.unlink()
            (self.dir / old_payload).rmdir()


def make_setup(root: Path, nodes_conf: str, scripts: Mapping[str, str], *, node: str = "node-1") -> Setup:
    setup = Setup(root=root, node=node)
    setup.conf_dir.mkdir(parents=True)
    setup.output.parent.mkdir(parents=True)  # node_exporter's textfile directory: the collector creates none
    setup.config.write_text(textwrap.dedent(nodes_conf).lstrip("\n"))
    for name, body in scripts.items():
        write_script(setup.conf_dir, name, body.replace("@MARKER@", setup.marker))
    return setup


def marked_env(setup: Setup, env: Mapping[str, str] | None) -> dict[str, str]:
    """clean_env() with the setup's marker, passed on to the scripts (EDGE_SCRIPT_ENV), plus `env`."""
    return clean_env(**{MARKER_VARIABLE: setup.marker, "EDGE_SCRIPT_ENV": MARKER_VARIABLE, **(env or {})})


def start_collector(procs: Processes, setup: Setup, *extra: str, env: Mapping[str, str] | None = None
                    ) -> subprocess.Popen[bytes]:
    setup.output.parent.mkdir(parents=True, exist_ok=True)  # the collector creates no directory
    return procs.start(setup.argv(*extra), env=marked_env(setup, env), log=setup.log)


def run_once(setup: Setup, *extra: str, env: Mapping[str, str] | None = None, timeout: float = 30
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        setup.argv("--once", *extra), env=marked_env(setup, env),
        stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=timeout, check=False,
    )


# -- the metrics file ---------------------------------------------------------------------------------------------

def complete_problem(text: str, expected_names: Sequence[str] = ALWAYS_WRITTEN) -> str | None:
    """Why `text` is not a complete metrics file, or None when it is one."""
    if not text.endswith("\n"):
        return f"does not end with a newline ({len(text)} bytes)"
    try:
        samples = parse_exposition(text)
    except Exception as error:  # the parser raises ValueError and friends on a torn line
        return f"does not parse: {error!r}"
    names = {name for name, _ in samples}
    missing = [name for name in expected_names if name not in names]
    return f"lacks {missing}" if missing else None


def read_metrics(path: Path) -> dict[SeriesKey, float]:
    return parse_exposition(path.read_text())


def value(samples: Mapping[SeriesKey, float], name: str, /, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def script_value(path: Path, name: str, script: str) -> float | None:
    """A per-script self-metric from the file as it is now; None when the file or the series is not there."""
    try:
        return value(read_metrics(path), name, script=script)
    except FileNotFoundError:
        return None


def wait_for_value(path: Path, name: str, predicate: object, *, timeout: float, **labels: str) -> float:
    """Poll the file until series `name{labels}` exists and `predicate(value)` holds; return the value."""

    def probe() -> tuple[float] | None:
        current = value(read_metrics(path), name, **labels)
        if current is not None and predicate(current):  # type: ignore[operator]
            return (current,)
        return None

    return wait_until(probe, timeout=timeout, what=f"{name}{labels} in {path}")[0]


# -- processes ----------------------------------------------------------------------------------------------------

def marked_processes(marker: str) -> list[tuple[int, str]]:
    """(pid, command line) of live, non-zombie processes that carry `marker` in their command line or their
    environment: the collector passes the marker variable on to scripts (EDGE_SCRIPT_ENV), so every process a
    script started has it, even a plain `sleep`."""
    found = []
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # exited while we looked
        if state != "Z" and (needle in cmdline or needle in environ):
            found.append((int(entry), cmdline.replace(b"\0", b" ").decode(errors="replace").strip()))
    return found


def leftovers(setup: Setup) -> list[tuple[int, str]]:
    """Processes the setup's scripts started that are still alive (the collector itself excluded)."""
    return [(pid, cmdline) for pid, cmdline in marked_processes(setup.marker) if str(EDGE_METRICS) not in cmdline]


def read_starts(path: Path) -> list[float]:
    """Times a script appended to `path` (`date +%s.%N` per run)."""
    if not path.exists():
        return []
    return [float(line) for line in path.read_text().split()]
