"""The processes a script leaves behind: find everything still running below the collector, however it detached
from the script (`setsid`, double fork, job control), end it, count it, reap it.

The collector is the child subreaper of its scripts (become_subreaper), so a process whose parent exits is
reparented to the collector rather than to init, and the kernel's lists of children
(/proc/PID/task/TID/children) lead from the collector to all of them.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import time

_PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
_GONE = ("Z", "X")  # zombie (reaped next round), or exited
_SWEEP_POLL = 0.01  # seconds between looks at the processes a script left behind while they exit
_UNKILLABLE_WAIT = 1.0  # after SIGKILL, how long a process stuck in the kernel is waited for
_COMMAND_CHARS = 80


def become_subreaper() -> str | None:
    """Make the collector the child subreaper of everything its scripts start: a process that leaves the
    script's session (`setsid`) or whose parent exits is then reparented to the collector rather than to init,
    so end_leftovers() finds it. Returns why that is not possible, or None. In a container the collector is
    PID 1, which already receives every orphan."""
    if os.getpid() == 1:
        return None
    # ctypes only for this one call at start: there is no prctl in the standard library.
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            return os.strerror(ctypes.get_errno())
    except (OSError, AttributeError) as error:  # no libc, or a libc without prctl (not Linux)
        return str(error)
    return None


def end_leftovers(pgid: int, deadline: float, seen: dict[int, str], spared: frozenset[int]) -> tuple[str, ...]:
    """End every process still running below the collector once the script `pgid` has been reaped: its background
    jobs, and what escaped its process group (`setsid cmd &`, `setsid -f`, a double fork). SIGTERM at first
    sight, SIGKILL from `deadline` on; zombies are reaped. Returns the commands of the processes ended
    (`seen` holds those already signalled, by pid). The `spared` children, and what runs below them, were there
    before the script started and are left alone."""
    me = os.getpid()
    while True:
        reap_orphans()
        alive = [pid for pid in descendants(me, spared) if _state(pid) not in _GONE]
        if not alive:
            break
        now = time.monotonic()
        terminate_unseen(alive, seen)
        if now >= deadline:
            for pid in alive:
                kill_quietly(pid, signal.SIGKILL)
        if now >= deadline + _UNKILLABLE_WAIT:
            break  # stuck in the kernel (state D); the next run's sweep tries again
        select.select([], [], [], _SWEEP_POLL)
    # Without a subreaper (prctl refused), orphans of the group went to init: the group kill still ends those.
    kill_quietly(-pgid, signal.SIGKILL)
    return tuple(seen.values())


def terminate_unseen(pids: list[int], seen: dict[int, str]) -> None:
    """SIGTERM to each of `pids` not in `seen` yet, which then holds its command; signalled once only."""
    for pid in pids:
        if pid not in seen:
            seen[pid] = _command(pid)
            kill_quietly(pid, signal.SIGTERM)
            kill_quietly(pid, signal.SIGCONT)  # a stopped process acts on SIGTERM only once it runs


def descendants(root: int, spared: frozenset[int] = frozenset()) -> list[int]:
    """Every process below `root` except the `spared` children and theirs, from the kernel's lists of children
    (/proc/PID/task/TID/children)."""
    found: list[int] = []
    pending = [child for child in children(root) if child not in spared]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children(pid))
    return found


def children(pid: int) -> list[int]:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []  # gone
    children: list[int] = []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", "rb") as handle:
                children.extend(int(child) for child in handle.read().split())
        except OSError:
            continue
    return children


def _state(pid: int) -> str:
    """The one-letter state of `pid` (`Z` zombie), or `X` when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return "X"
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3].decode("ascii", "replace")


def _command(pid: int) -> str:
    """The command line of `pid`, shortened, for the log."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read(_COMMAND_CHARS * 4)
    except OSError:
        return "?"
    text = cmdline.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")
    return text[:_COMMAND_CHARS] or "?"


def kill_quietly(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        pass  # gone, and its id reused by someone else's process


def reap_orphans() -> None:
    """Collect exited orphans: in a container the collector may be PID 1 and inherit killed grandchildren."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        except OSError as error:
            if error.errno == errno.EINTR:
                continue
            return
        if pid == 0:
            return
