"""Shared test machinery: real processes that are always cleaned up, polling with deadlines, free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[1]
COMPONENTS_ENV = REPO / ".cache" / "components" / "env"
SIM_LIB = REPO / "build" / "libi2csim.so"

T = TypeVar("T")


def components() -> dict[str, str]:
    """Paths of the Debian components unpacked by tools/fetch-components.sh (run by `make test`)."""
    if not COMPONENTS_ENV.exists():
        raise RuntimeError(f"{COMPONENTS_ENV} missing: run `make components` (make test does)")
    values: dict[str, str] = {}
    for line in COMPONENTS_ENV.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = probe()
            if result:
                return result
        except Exception as error:  # the probe may fail while a service starts up
            last_error = error
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_error!r})")
        time.sleep(interval)


class Processes:
    """Starts processes in their own process groups and kills every group at the end, even on failure."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        stdout: int | object = subprocess.DEVNULL,
        stderr: int | object = subprocess.DEVNULL,
        log: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start argv; with `log`, stdout and stderr go to that file (read it when a test fails)."""
        out: object = stdout
        err: object = stderr
        handle = None
        if log is not None:
            handle = open(log, "ab")  # noqa: SIM115 - closed by the child inheriting it; ours closed below
            out = err = handle
        proc = subprocess.Popen(
            [str(a) for a in argv],
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,  # type: ignore[arg-type]
            stderr=err,  # type: ignore[arg-type]
            start_new_session=True,
        )
        if handle is not None:
            handle.close()
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        """Signal the process's group and wait for it; SIGKILL the group if it does not exit in time."""
        _signal_group(proc, sig)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            return proc.wait(timeout=10)

    def cleanup(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                self.stop(proc, signal.SIGTERM, timeout=5)
            # Grandchildren may outlive the leader: the group is killed either way.
            _signal_group(proc, signal.SIGKILL)
        self._procs.clear()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


@contextmanager
def processes() -> Iterator[Processes]:
    group = Processes()
    try:
        yield group
    finally:
        group.cleanup()


def untested_alerts(rules_file: Path) -> set[str]:
    """Alerts of a Prometheus rules file that its `<name>.test.yml` beside it never expects to fire."""
    import yaml  # test-only dependency; the other helpers stay importable without it

    rules = yaml.safe_load(rules_file.read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
    tests = yaml.safe_load(rules_file.with_suffix(".test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if case["exp_alerts"]}
    return alerts - tested
