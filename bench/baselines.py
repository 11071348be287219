"""The two reference points for the collector's CPU: the script alone, and the naive shell sidecar.

Each iteration is a tree of processes this benchmark spawns and reaps itself, so getrusage(RUSAGE_CHILDREN)
before and after gives its CPU in microseconds. Iterations are paced at the collector's interval so caches
and CPU frequency are in the same state as for the collector.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
# What a shell sidecar does to turn key=value into an exposition line: `edge_key value`.
SED_PROGRAM = r"s/^\([a-zA-Z_][a-zA-Z0-9_]*\)=/edge_\1 /"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def paced(iterations: int, interval: float, once: Callable[[], None]) -> list[float]:
    """CPU seconds of each call of `once` (processes it spawns and reaps), one call per `interval`."""
    samples = []
    next_at = time.monotonic()
    for _ in range(iterations):
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        next_at += interval
        before = children_cpu()
        once()
        samples.append(children_cpu() - before)
    return samples


def _wait(pid: int) -> None:
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"baseline process {pid} failed with status {status}")


def bare_bash(script: Path, *, iterations: int, interval: float) -> list[float]:
    """`bash script > /dev/null`: the script's own cost, which every approach pays."""
    bash = _which("bash")

    def once() -> None:
        pid = os.posix_spawn(bash, [bash, str(script)], os.environ,
                             file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
        _wait(pid)

    return paced(iterations, interval, once)


def shell_pipeline(script: Path, output: Path, *, iterations: int, interval: float) -> list[float]:
    """One iteration of the shell sidecar's loop body, `bash script | sed ... > tmp && mv tmp file`, with the
    same processes a loop shell would fork; the loop shell's own forking is not counted (see shell_loop)."""
    bash, sed, mv = _which("bash"), _which("sed"), _which("mv")
    temp = output.with_name(output.name + ".tmp")

    def once() -> None:
        read_end, write_end = os.pipe()
        producer = os.posix_spawn(bash, [bash, str(script)], os.environ,
                                  file_actions=[(os.POSIX_SPAWN_DUP2, write_end, 1),
                                                (os.POSIX_SPAWN_CLOSE, read_end)])
        consumer = os.posix_spawn(sed, [sed, "-e", SED_PROGRAM], os.environ,
                                  file_actions=[(os.POSIX_SPAWN_DUP2, read_end, 0),
                                                (os.POSIX_SPAWN_CLOSE, write_end),
                                                (os.POSIX_SPAWN_OPEN, 1, str(temp),
                                                 os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)])
        os.close(read_end)
        os.close(write_end)
        _wait(producer)
        _wait(consumer)
        _wait(os.posix_spawn(mv, [mv, str(temp), str(output)], os.environ))

    return paced(iterations, interval, once)


def shell_loop(script: Path, output: Path, *, iterations: int, interval: float) -> float:
    """The real thing: a bash `while` loop running the pipeline (bench/shell_loop.sh). Its CPU is only known
    in total, once the loop shell is reaped: returns the mean CPU seconds per iteration."""
    before = children_cpu()
    subprocess.run(
        ["bash", str(BENCH_DIR / "shell_loop.sh"), str(iterations), f"{interval:.3f}", str(script), str(output)],
        check=True, stdin=subprocess.DEVNULL,
    )
    return (children_cpu() - before) / iterations


def _which(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise SystemExit(f"{program} not found on PATH")
    return path
