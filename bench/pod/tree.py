"""A container's processes as its cgroup would count them: the program the image runs and every descendant, found
through /proc (this kernel has no /proc/<pid>/task/<tid>/children). The wrappers this machine adds in front of an
image's program (the I2C simulator, strace) are not part of any container and are left out."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bench.procfs import cpu_times, status_kib


@dataclass(frozen=True, slots=True)
class Usage:
    """A container's figures at one instant."""

    cpu_s: float  # CPU of its live processes, each with the reaped children it waited for (the scripts)
    rss_kib: int  # resident memory of its live processes, summed
    hwm_kib: int  # peak resident memory of its main process since it started (VmHWM)
    write_bytes: int  # bytes sent towards storage (/proc/<pid>/io), reaped children's included in their parent's
    processes: int


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process now."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            parents[int(entry)] = parent(int(entry))
        except OSError:
            continue  # ended between listdir and open
    return parents


def parent(pid: int) -> int:
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rindex(")") + 2 :].split()[1])


def _is_wrapper(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    # `edge-metrics simulate` runs as `python .../edge-metrics simulate ...`.
    return os.path.basename(argv[0]) == b"strace" or b"simulate" in argv[1:3]


def main_process(leader: int) -> int | None:
    """The image's program under `leader` (the process started for the container): the first one below the
    wrappers; None while it has not started yet."""
    parents = _parents()
    pid = leader
    while _is_wrapper(pid):
        children = [child for child, parent in parents.items() if parent == pid]
        if not children:
            return None
        pid = min(children)
    return pid


def descendants(root: int) -> list[int]:
    """`root` and every process below it."""
    parents = _parents()
    found, frontier = [root], [root]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found.extend(frontier)
    return found


def _io_field(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == key:
            return int(value)
    raise KeyError(f"{key} not in /proc/{pid}/io")


def usage(main: int) -> Usage:
    """The container whose main process is `main`, now. A process that ends while it is read is skipped: its
    CPU and writes reach its parent's counters when the parent reaps it."""
    cpu, rss, written, count = 0.0, 0, 0, 0
    for pid in descendants(main):
        try:
            times = cpu_times(pid)
            rss_now = status_kib(pid, "VmRSS")
            io = _io_field(pid, "write_bytes")
        except (OSError, KeyError):
            continue
        cpu += times.own + times.children
        rss += rss_now
        written += io
        count += 1
    return Usage(cpu, rss, status_kib(main, "VmHWM"), written, count)


def rss_split_kib(pid: int) -> tuple[int, int]:
    """(anonymous, file-backed) resident memory of one process: its heap versus the pages of its program and
    libraries, which the page cache can share and reclaim."""
    return status_kib(pid, "RssAnon"), status_kib(pid, "RssFile")
