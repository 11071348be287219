"""Run one collector script: own session and process group, stdin /dev/null, capped output, hard timeout.

Why not subprocess.run(timeout=...): it kills only the direct child, and then waits for EOF on pipes that a
grandchild (`i2cget`, `sleep 300 &`) still holds, so the collector hangs. Here the whole process group is
terminated, and the pipes are abandoned as soon as the script itself has exited.
"""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from edge_metrics.reaper import children, descendants, end_leftovers, kill_quietly, terminate_unseen
from edge_metrics.samples import RunResult, Value

TYPE_CHECKING = False  # `typing` for the type checker only (see log.py)
if TYPE_CHECKING:
    from typing import Final

_CHUNK = 65536
_PIPE_BUFFER = 1 << 20

# Series one script may export. Sized so that the worst output this lets through (this many series with long
# label values, up to the 1 MiB output cap) keeps every container of the DaemonSet's pod inside its memory
# limit: tests/integration/test_memory_limits.py runs it under those limits; figures in docs/pipeline.md.
DEFAULT_MAX_SERIES = 5_000

# What a script's environment holds besides the variables the user lists (--script-env): the collector's PATH,
# TZ, the dynamic loader's variables (they already apply to the collector itself) and the I2C simulator's,
# which `edge-metrics simulate` sets for the programs it runs. Everything else the collector's environment
# holds (tokens, passwords of other tools in the pod) stays out of reach of the scripts.
INHERITED_VARIABLES = ("PATH", "TZ", "LD_PRELOAD", "LD_LIBRARY_PATH", "EDGE_I2C_SIM_MODEL", "EDGE_I2C_SIM_STATE")
SET_FOR_SCRIPTS = ("NODE_NAME", "EDGE_SCRIPT_TIMEOUT", "LC_ALL")  # always set by the collector itself
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # i2c-tools live in sbin


class RunLimits(Value):
    __slots__ = ("kill_grace", "max_series", "stderr_cap", "stdout_cap", "timeout")
    timeout: Final[float]  # seconds
    stdout_cap: Final[int]
    stderr_cap: Final[int]
    kill_grace: Final[float]  # SIGTERM -> SIGKILL
    max_series: Final[int]  # series kept from one run's output, the first in output order

    def __init__(
        self,
        timeout: float,
        stdout_cap: int = 1 << 20,
        stderr_cap: int = 64 << 10,
        kill_grace: float = 1.0,
        max_series: int = DEFAULT_MAX_SERIES,
    ) -> None:
        self.timeout = timeout
        self.stdout_cap = stdout_cap
        self.stderr_cap = stderr_cap
        self.kill_grace = kill_grace
        self.max_series = max_series


def script_environment(
    environ: Mapping[str, str], *, node: str, timeout: float, passed: Iterable[str] = ()
) -> dict[str, str]:
    """The environment every script runs with: INHERITED_VARIABLES and `passed` where `environ` has them, then
    NODE_NAME, EDGE_SCRIPT_TIMEOUT (seconds, so a script can budget its reads) and LC_ALL=C (numbers with `.`)."""
    env = {name: environ[name] for name in (*INHERITED_VARIABLES, *passed) if name in environ}
    env.setdefault("PATH", DEFAULT_PATH)
    env["NODE_NAME"] = node
    env["EDGE_SCRIPT_TIMEOUT"] = f"{timeout:g}"
    env["LC_ALL"] = "C"
    return env


def run_script(
    path: Path,
    *,
    bash: str,
    env: Mapping[str, str],
    limits: RunLimits,
    cancel_fd: int | None = None,
    should_cancel: Callable[[], bool] = lambda: True,
    shown_as: Path | None = None,
) -> RunResult:
    """Run `bash <path>` and return what it printed.

    `cancel_fd` is the signal wakeup pipe: when it becomes readable it is drained and `should_cancel()` decides
    whether the run is aborted (shutdown) or goes on (e.g. SIGHUP, handled after the run). `shown_as`: the path
    that bash's messages on stderr name instead of `path` (the script's real path when `path` is its private
    copy, snapshot.py).
    """
    started = time.monotonic()
    # Children the caller already has are not the script's: the sweep after the run spares them.
    spared = frozenset(children(os.getpid()))
    out_read, out_write = os.pipe2(os.O_CLOEXEC)
    err_read, err_write = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.posix_spawn(
            bash,
            [bash, str(path)],
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out_write, 1),
                (os.POSIX_SPAWN_DUP2, err_write, 2),
            ],
            setsid=True,  # own session and process group: the timeout kills the whole tree
            # Python ignores SIGPIPE and SIGXFSZ; ignored dispositions survive exec, so restore the defaults.
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
        )
    except OSError as error:
        for fd in (out_read, out_write, err_read, err_write):
            os.close(fd)
        return RunResult(
            exit_code=None, signal=None, timed_out=False, cancelled=False,
            duration=time.monotonic() - started, stdout=b"", stderr=b"",
            stdout_truncated=False, spawn_error=f"cannot start {bash}: {error.strerror}",
        )
    os.close(out_write)
    os.close(err_write)
    result = _supervise(pid, out_read, err_read, started, limits, cancel_fd, should_cancel, spared)
    if shown_as is None or os.fsencode(path) not in result.stderr:
        return result
    return RunResult(
        exit_code=result.exit_code, signal=result.signal, timed_out=result.timed_out, cancelled=result.cancelled,
        duration=result.duration, stdout=result.stdout,
        stderr=result.stderr.replace(os.fsencode(path), os.fsencode(shown_as)),
        stdout_truncated=result.stdout_truncated,
        spawn_error=result.spawn_error, killed=result.killed,
    )


class _Capture:
    """Keeps the first `cap` bytes of a stream and discards the rest (while still draining the pipe)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False

    def add(self, chunk: bytes) -> None:
        room = self.cap - self.size
        if len(chunk) > room:
            self.truncated = True
            chunk = chunk[: max(room, 0)]
        if chunk:
            self.chunks.append(chunk)
            self.size += len(chunk)

    def data(self) -> bytes:
        data = b"".join(self.chunks)
        if self.truncated:
            # The last line was cut mid-way: drop it rather than export half a number.
            data = data[: data.rfind(b"\n") + 1]
        return data


def _supervise(
    pid: int,
    out_fd: int,
    err_fd: int,
    started: float,
    limits: RunLimits,
    cancel_fd: int | None,
    should_cancel: Callable[[], bool],
    spared: frozenset[int],
) -> RunResult:
    pidfd = os.pidfd_open(pid)
    captures = {out_fd: _Capture(limits.stdout_cap), err_fd: _Capture(limits.stderr_cap)}
    poller = select.poll()
    for fd in (out_fd, err_fd, pidfd):
        poller.register(fd, select.POLLIN)
    if cancel_fd is not None:
        poller.register(cancel_fd, select.POLLIN)
    deadline = started + limits.timeout
    open_pipes = {out_fd, err_fd}
    status: int | None = None
    timed_out = cancelled = False
    try:
        while status is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for fd, _ in poller.poll(remaining * 1000 + 1):
                if fd == pidfd:
                    status = _reap(pid)
                elif fd == cancel_fd:
                    drain_wakeup(fd)
                    cancelled = should_cancel()
                elif not _read_into(fd, captures[fd]):
                    poller.unregister(fd)
                    open_pipes.discard(fd)
            if cancelled:
                break
        grace = limits.kill_grace if not cancelled else 0.2
        if status is None:
            status, killed = _terminate_group(pid, pidfd, grace, spared)
        else:
            # The script has exited. What it wrote is in the pipe buffers; anything it left running in the
            # background may still hold the pipes open, so drain without waiting for EOF, then end it all.
            for fd in list(open_pipes):
                _drain(fd, captures[fd])
            killed = end_leftovers(pid, time.monotonic() + grace, {}, spared)
    finally:
        for fd in (out_fd, err_fd, pidfd):
            os.close(fd)
    exit_code, killed_by = _decode_status(status)
    return RunResult(
        exit_code=None if (timed_out or cancelled) else exit_code,
        signal=killed_by,
        timed_out=timed_out,
        cancelled=cancelled,
        duration=time.monotonic() - started,
        stdout=captures[out_fd].data(),
        stderr=captures[err_fd].data(),
        stdout_truncated=captures[out_fd].truncated,
        killed=killed,
    )


def _read_into(fd: int, capture: _Capture) -> bool:
    """Read one chunk; False at EOF."""
    try:
        chunk = os.read(fd, _CHUNK)
    except BlockingIOError:
        return True
    if not chunk:
        return False
    capture.add(chunk)
    return True


def _drain(fd: int, capture: _Capture) -> None:
    os.set_blocking(fd, False)
    try:
        for _ in range(_PIPE_BUFFER // _CHUNK + 1):
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                return
            capture.add(chunk)
    except BlockingIOError:
        return


def drain_wakeup(fd: int) -> None:
    """Empty a non-blocking signal wakeup pipe."""
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _reap(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return status


def _terminate_group(pid: int, pidfd: int, grace: float, spared: frozenset[int]) -> tuple[int, tuple[str, ...]]:
    """SIGTERM the script, its process group and everything it started, SIGKILL them after `grace`; return the
    script's wait status and the commands of the other processes that were ended."""
    deadline = time.monotonic() + grace
    seen: dict[int, str] = {}
    _signal_group(pid, signal.SIGTERM)
    terminate_unseen(descendants(pid), seen)  # also those that left the group (setsid) while the script runs
    ready = select.select([pidfd], [], [], grace)[0] if grace > 0 else []
    if not ready:
        _signal_group(pid, signal.SIGKILL)
    status = _reap(pid)
    return status, end_leftovers(pid, deadline, seen, spared)


def _signal_group(pgid: int, sig: int) -> None:
    kill_quietly(-pgid, sig)  # a negative pid is the process group


def _decode_status(status: int) -> tuple[int, int | None]:
    """Exit code (shell convention 128+N for a signal) and the signal, if any."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return 128 + sig, sig
    return os.WEXITSTATUS(status), None
