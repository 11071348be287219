"""One phase of the comparison: every approach started at once on its own copy of the script, a window
of a fixed length measured on all of them together, and what each one's own process cost in it."""

from __future__ import annotations

import dataclasses
import math
import shutil
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.baselines import bare_bash
from bench.peers.agents import Approach, Running, Setup
from bench.peers.centre import Prometheus
from bench.peers.scripts import KEY_VALUE, Format
from bench.procfs import cpu_times, status_kib
from tests.helpers import Processes, wait_until

ScriptMaker = Callable[[Path, Format, Path], Path]  # (directory, format, runs log) -> script


@dataclass(frozen=True, slots=True)
class Figures:
    """One approach's figures in one phase."""

    name: str
    cpu_ms: float  # own CPU per run, the script excluded
    kernel_ms: float  # of which in the kernel (stime), the loop shell's children included
    steady_mib: float  # max VmRSS after the warm-up
    peak_mib: float  # VmHWM at the end, start-up included
    runs: int  # runs started inside the window
    expected: int  # window / interval
    delivered: int | None  # of those runs, how many had their reading 0 stored in Prometheus
    first_ms: float  # process start -> first run's start
    rss_marks: tuple[float, ...]  # VmRSS (MiB) at 10 %, 50 % and 100 % of the window


@dataclass(frozen=True, slots=True)
class Phase:
    interval: float
    warmup: int  # runs before the window opens
    runs: int  # the window's length, in intervals
    script: ScriptMaker
    edge_env: dict[str, str]
    # False: the window lasts `runs` intervals (runs achieved at the rate); True: it lasts until every approach
    # has started `runs` runs in it, however long that takes on a loaded machine (growth over a count of runs).
    count_runs: bool = False


class Started:
    def __init__(self, approach: Approach, workdir: Path, running: Running, log: Path) -> None:
        self.approach, self.workdir, self.running, self.log = approach, workdir, running, log

    def stamps(self) -> list[float]:
        try:
            return [float(line) for line in self.log.read_text().split()]
        except FileNotFoundError:
            return []


def run_phase(procs: Processes, root: Path, textfile_root: Path, approaches: tuple[Approach, ...],
              phase: Phase, *, count_delivered: bool) -> list[Figures]:
    root.mkdir(parents=True)
    root.chmod(0o755)  # collectd runs the script as nobody
    prometheus = Prometheus(procs, root, interval=phase.interval)
    setup = Setup(procs, root, textfile_root, phase.interval, f"{prometheus.url}/api/v1/write", phase.edge_env)
    started: list[Started] = []
    scrapes = []
    for approach in approaches:
        work = root / approach.name
        work.mkdir()
        work.chmod(0o755)
        log = work / "runs.log"
        log.touch()
        log.chmod(0o666)
        script = phase.script(work, approach.fmt, log)
        running = approach.start(dataclasses.replace(setup, workdir=work), script)
        started.append(Started(approach, work, running, log))
        if running.scrape is not None:
            scrapes.append(running.scrape)
    prometheus.start(scrapes)
    try:
        wait_until(lambda: all(len(s.stamps()) >= phase.warmup for s in started),
                   timeout=phase.warmup * phase.interval * 4 + 60, what=f"{phase.warmup} warm-up runs")
    except TimeoutError as error:
        counts = ", ".join(f"{s.approach.name} {len(s.stamps())}" for s in started)
        raise TimeoutError(f"{error}: runs so far {counts}; logs in {root}") from None

    # The script alone, paced beside them: what the shell loop's figure holds besides the loop's own work.
    (root / "baseline").mkdir()
    bare = phase.script(root / "baseline", KEY_VALUE, root / "baseline" / "runs.log")
    baseline: list[float] = []
    window = phase.runs * phase.interval
    thread = threading.Thread(target=lambda: baseline.extend(
        bare_bash(bare, iterations=max(1, min(phase.runs - 2, 200)), interval=phase.interval)), daemon=True)
    opened = time.time()
    cpu_before = {s.approach.name: cpu_times(s.running.pid) for s in started}
    thread.start()
    rss: dict[str, list[float]] = {s.approach.name: [] for s in started}
    deadline = opened + window * (20 if phase.count_runs else 1)
    while time.time() < deadline and not (phase.count_runs and all(
            sum(1 for t in s.stamps() if t >= opened) >= phase.runs for s in started)):
        for s in started:
            rss[s.approach.name].append(status_kib(s.running.pid, "VmRSS") / 1024)
        time.sleep(min(0.5, window / 20))
    closed = time.time()
    cpu_after = {s.approach.name: cpu_times(s.running.pid) for s in started}
    thread.join(timeout=window + 60)
    script_ms = statistics.median(baseline) * 1000 if baseline else 0.0

    if count_delivered:
        time.sleep(2 * phase.interval + 3)  # the last scrape, vmagent's flush
    figures = []
    for s in started:
        name = s.approach.name
        stamps = s.stamps()
        inside = [t for t in stamps if opened <= t < closed]
        before, after = cpu_before[name], cpu_after[name]
        own = after.own - before.own
        kernel = after.system - before.system
        if s.running.script_in_cpu:
            own += after.children - before.children
            kernel += after.children_system - before.children_system
        runs = max(1, len(inside))
        cpu_ms = own * 1000 / runs - (script_ms if s.running.script_in_cpu else 0.0)
        delivered = None
        if count_delivered:
            stored = {round(v, 3) for v in prometheus.stamps(name, s.running.metric, since=opened, until=closed)}
            delivered = sum(1 for t in inside if round(t, 3) in stored)
        samples = rss[name]
        marks = tuple(samples[min(len(samples) - 1, int(len(samples) * f))] for f in (0.1, 0.5, 1.0))
        figures.append(Figures(
            name=name, cpu_ms=cpu_ms, kernel_ms=kernel * 1000 / runs, steady_mib=max(samples),
            peak_mib=status_kib(s.running.pid, "VmHWM") / 1024,
            runs=len(inside), expected=round((closed - opened) / phase.interval), delivered=delivered,
            first_ms=(stamps[0] - s.running.spawned) * 1000 if stamps and s.running.first_run_is_own else math.nan,
            rss_marks=marks,
        ))
    procs.cleanup()
    shutil.rmtree(textfile_root, ignore_errors=True)
    return figures
