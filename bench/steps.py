"""Where one run's CPU goes: the daemon's steps driven in-process, timed with the thread's CPU clock.

Runs are paced at the daemon's interval: between runs the CPU caches go cold as they do in the daemon, which
costs a run about twice what a tight loop measures.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from bench.workload import NODE
from edge_metrics.log import Logger
from edge_metrics.node import Collector, Settings, tune_gc
from edge_metrics.reaper import reap_orphans
from edge_metrics.runner import RunLimits, run_script
from edge_metrics.textfile import write_atomically

Step = Callable[[], object]


def step_medians(directory: Path, outputs: dict[str, Path], *, runs: int, interval: float) -> dict[str, float]:
    """Median CPU seconds of each step of a run of the only script in `directory`/nodes.conf."""
    bash = shutil.which("bash")
    if bash is None:
        raise SystemExit("bash not found on PATH")
    settings = Settings(
        config_path=directory / "nodes.conf", scripts_dir=directory, node=NODE, output=None, prefix="edge_",
        default_interval=15.0, limits=RunLimits(timeout=10.0), bash=bash,
    )
    collector = Collector(settings, Logger(level="warning"))
    if not collector.load():
        raise RuntimeError(f"{directory / 'nodes.conf'} did not load")
    tune_gc()  # as `edge-metrics run` does
    job = collector.plan.jobs[0]
    stats = collector.stats[job.script]
    result = run_script(job.path, bash=bash, env=collector.script_env, limits=settings.limits)

    def run() -> None:
        nonlocal result
        result = run_script(job.path, bash=bash, env=collector.script_env, limits=settings.limits)

    text = collector.exposition()
    labels = list(outputs)
    targets = {label: outputs[label] / "custom_metrics.prom" for label in labels}
    for target in targets.values():
        target.parent.mkdir(parents=True, exist_ok=True)

    def write(label: str) -> Step:
        return lambda: write_atomically(targets[label], text)

    # One group per wake-up, its steps back to back as in the daemon: first the daemon's own sequence, then
    # the bare system calls and the write to any other file system, each after its own sleep.
    groups: list[dict[str, Step]] = [
        {
            "config check before the run (Collector.config_changed)": lambda: collector.config_changed(full=False),
            "run_script: spawn, capture, wait (runner.py)": run,
            "parse + bookkeeping (Collector._record)": lambda: collector._record(job, stats, result),
            "self-metrics + render (Collector.exposition)": collector.exposition,
            f"write_atomically, file on {labels[0]}": write(labels[0]),
            "reap_orphans (reaper.py)": reap_orphans,
        },
        {"for scale: bare spawn + capture system calls, no collector code": lambda: spawn_floor(bash, job.path)},
        *({f"write_atomically, file on {label}": write(label)} for label in labels[1:]),
    ]
    samples: dict[str, list[int]] = {name: [] for group in groups for name in group}
    next_at = time.monotonic()
    for _ in range(runs):
        for group in groups:
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_at += interval / len(groups)
            for name, step in group.items():
                started = time.thread_time_ns()
                step()
                samples[name].append(time.thread_time_ns() - started)
    return {name: statistics.median(values) / 1e9 for name, values in samples.items()}


def spawn_floor(bash: str, script: Path) -> None:
    """What any collector must do per run, with nothing else: two pipes, spawn in a new session, poll until
    exit, read, reap, close. Its CPU is the kernel's floor for this machine."""
    out_read, out_write = os.pipe2(os.O_CLOEXEC)
    err_read, err_write = os.pipe2(os.O_CLOEXEC)
    pid = os.posix_spawn(
        bash, [bash, str(script)], os.environ,
        file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                      (os.POSIX_SPAWN_DUP2, out_write, 1), (os.POSIX_SPAWN_DUP2, err_write, 2)],
        setsid=True, setsigdef=(signal.SIGPIPE,),
    )
    os.close(out_write)
    os.close(err_write)
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    for fd in (out_read, err_read, pidfd):
        poller.register(fd, select.POLLIN)
    exited = False
    while not exited:
        for fd, _ in poller.poll(10_000):
            if fd == pidfd:
                exited = True
            elif not os.read(fd, 65536):
                poller.unregister(fd)
    os.waitpid(pid, 0)
    for fd in (out_read, err_read, pidfd):
        os.close(fd)
