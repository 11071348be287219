"""Real processes that are always cleaned up: each in its own process group, every group killed at the end, also
when whoever started them fails."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path


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

    def started(self) -> list[subprocess.Popen[bytes]]:
        """Every process started since the last cleanup (stopped ones too), in start order."""
        return list(self._procs)

    def cleanup(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                self.stop(proc, signal.SIGTERM, timeout=5)
            # Grandchildren may outlive the leader: the group is killed either way.
            _signal_group(proc, signal.SIGKILL)
        self._procs.clear()


def exists(pid: int, *, group: bool = False) -> bool:
    """Whether a process (with `group`, a process group) of that id exists; one of another user's counts."""
    try:
        (os.killpg if group else os.kill)(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def run_in_own_group(argv: Sequence[str], *, timeout: float, **options: object) -> subprocess.CompletedProcess[bytes]:
    """Run `argv` to completion in a process group of its own (stdout and stderr captured), then kill the
    group: whatever it started dies with it, also when it hangs past `timeout` (TimeoutExpired)."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, **options)  # type: ignore[call-overload]
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
    return subprocess.CompletedProcess(list(argv), proc.returncode, stdout, stderr)


@contextmanager
def processes() -> Iterator[Processes]:
    group = Processes()
    try:
        yield group
    finally:
        group.cleanup()
