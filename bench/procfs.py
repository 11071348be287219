"""What the kernel knows about another process's CPU time and memory, read from /proc."""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """Seconds from /proc/<pid>/stat, in clock ticks (10 ms here): precise only summed over many runs."""

    own: float  # utime + stime: the process itself, never its children
    children: float  # cutime + cstime: children it has waited for (the scripts)
    system: float  # stime: the part of `own` spent in the kernel (system calls, page faults) on its behalf
    children_system: float = 0.0  # cstime: the part of `children` spent in the kernel


def own_cpu_ns(pid: int) -> int:
    """CPU time the process itself has used, in nanoseconds (scheduler accounting, children excluded).

    /proc/<pid>/task/*/schedstat holds each thread's on-CPU time in ns, so one run of ~1 ms is measurable,
    where /proc/<pid>/stat counts whole 10 ms ticks.
    """
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as handle:
                total += int(handle.read().split()[0])
        except FileNotFoundError:
            continue  # a thread that ended between listdir and open
    return total


def cpu_times(pid: int) -> CpuTimes:
    with open(f"/proc/{pid}/stat") as handle:
        text = handle.read()
    # The command name (field 2) may contain spaces and parentheses: split after its closing parenthesis.
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return CpuTimes(own=(utime + stime) / _TICK, children=(cutime + cstime) / _TICK, system=stime / _TICK,
                    children_system=cstime / _TICK)


def status_kib(pid: int, key: str) -> int:
    """A `kB` field of /proc/<pid>/status, e.g. VmRSS (resident now) or VmHWM (peak resident)."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(f"{key} not in /proc/{pid}/status")
