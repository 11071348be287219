"""Counting each container's flushes to storage, and the programs it starts: strace in front of the image's
program, stopping it only at those calls (seccomp-bpf, so every other system call runs untraced), each logged with
its time and the file it flushed. A flush on an SD card costs an erase-block program whatever the bytes;
write_bytes alone does not show it. strace still stops every fork, which costs the traced processes CPU: the
bench counts on a twin pod and measures CPU on one that runs untraced."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.k8s.podsim import LocalImage

CALLS = ("fsync", "fdatasync", "sync_file_range", "syncfs", "msync", "sync")
_LINE = re.compile(r"^\d+\s+(\d+\.\d+)\s+(" + "|".join(CALLS) + r")\((\d+)(?:<([^>]*)>)?")


def traced(image: LocalImage, logs: Path) -> LocalImage:
    """`image` with strace in front of its program, logging into `logs` under its own pid (log_of): one image may
    run in two pods (vmagent at the node and at the centre). After the simulator's `--` when the program runs
    under the I2C simulator, so the simulator stays outside the container as it is on a board."""
    strace = (f"exec strace -f --seccomp-bpf -qq -e signal=none -y -ttt -e trace={','.join((*CALLS, 'execve'))} "
              '-o "$0/$$.fsyncs" -- "$@"')
    argv = list(image.entrypoint)
    at = argv.index("--") + 1 if "--" in argv else 0
    return LocalImage([*argv[:at], "sh", "-c", strace, str(logs), *argv[at:]], image.env)


def log_of(logs: Path, tracer: int) -> Path:
    """The log of the strace whose pid is `tracer` (the parent of the traced program)."""
    return logs / f"{tracer}.fsyncs"


@dataclass(frozen=True, slots=True)
class Flush:
    at: float  # epoch seconds
    call: str
    path: str  # the file or directory flushed, as the kernel resolves it ("" when unknown)


def read_flushes(log: Path) -> list[Flush]:
    if not log.exists():
        return []
    flushes = []
    for line in log.read_text(errors="replace").splitlines():
        match = _LINE.match(line)
        if match:
            flushes.append(Flush(float(match[1]), match[2], match[4] or ""))
    return flushes


def execs(log: Path, start: float, end: float) -> int:
    """Programs started (execve) in [start, end)."""
    if not log.exists():
        return 0
    count = 0
    for line in log.read_text(errors="replace").splitlines():
        fields = line.split(maxsplit=3)
        if len(fields) > 2 and fields[2].startswith("execve(") and start <= float(fields[1]) < end:
            count += 1
    return count


def by_volume(flushes: list[Flush], volumes: Mapping[str, Path], start: float, end: float) -> Counter[str]:
    """Flushes in [start, end) per volume of the pod they landed in (`other` for anything else)."""
    roots = {name: str(path.resolve()) for name, path in volumes.items()}
    counts: Counter[str] = Counter()
    for flush in flushes:
        if start <= flush.at < end:
            name = next((n for n, r in roots.items() if flush.path == r or flush.path.startswith(r + "/")), "other")
            counts[name] += 1
    return counts
