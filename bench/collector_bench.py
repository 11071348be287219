"""Collector performance against the targets of issue 2 §10; prints one table per measurement.

    .venv/bin/python -m bench.collector_bench            # full run, about 4 minutes on 2 cores (make bench)
    .venv/bin/python -m bench.collector_bench --help     # smaller counts, single measurements

Not a test: nothing fails on a MISS unless --strict is given. Method and figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import baselines, procfs
from bench.steps import step_medians
from bench.workload import (
    Daemon,
    echo_lines,
    filesystem,
    output_lines,
    tmpfs_dir,
    write_config,
    write_script,
)
from edge_metrics.merge import script_families
from edge_metrics.node import tune_gc
from edge_metrics.parse import parse_output
from edge_metrics.render import render
from edge_metrics.textfile import write_atomically
from testbed.poll import wait_until

MIB = 1024.0  # /proc reports KiB
CPU_TARGET_MS = 1.0
RSS_TARGET_MIB = 16.0
RSS_GROWTH_LIMIT_KIB = 256  # over the whole run: a leak of one small object per run would exceed it
THROUGHPUT_TARGET_S = 1.0  # for TARGET_LINES lines
TARGET_LINES = 100_000
STARTUP_TARGET_MS = 300.0
STDOUT_CAP = 1 << 20  # the collector's default stdout cap


@dataclass
class Table:
    title: str
    headers: Sequence[str]
    rows: list[Sequence[object]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verdicts: list[bool] = field(default_factory=list)

    def judge(self, ok: bool) -> str:
        self.verdicts.append(ok)
        return "PASS" if ok else "MISS"

    def show(self) -> None:
        cells = [[str(c) for c in self.headers], *[[_cell(c) for c in row] for row in self.rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.headers))]
        print(f"\n## {self.title}\n")
        for index, row in enumerate(cells):
            print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
            if index == 0:
                print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for note in self.notes:
            print(f"\n{note}")
        sys.stdout.flush()


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def ms(seconds: float) -> float:
    return seconds * 1000.0


def p90(values: Sequence[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else values[0]


# -- 1. CPU per run -----------------------------------------------------------------------------------------


def measure_cpu(workdir: Path, runs: int, interval: float, fast_dir: Path | None) -> list[Table]:
    directory = workdir / "cpu"
    directory.mkdir()
    script = write_script(directory, "bench20", echo_lines(20))
    write_config(directory, f"bench20:{round(interval * 1000)}ms")
    # The DaemonSet writes the file to a tmpfs (emptyDir, medium: Memory); a disk costs the writer more CPU.
    outputs = {"disk": directory / "textfile"}
    if fast_dir is not None:
        outputs = {"tmpfs": fast_dir / "textfile", **outputs}
    labels = {"tmpfs": "tmpfs", "disk": f"disk ({filesystem(directory)} at {directory.parent.parent})"}
    first = next(iter(outputs))
    scratch = outputs[first] / "baseline.prom"
    scratch.parent.mkdir(parents=True)

    bare = baselines.bare_bash(script, iterations=runs, interval=interval)
    pipeline = baselines.shell_pipeline(script, scratch, iterations=runs, interval=interval)
    loop_mean = baselines.shell_loop(script, scratch, iterations=runs, interval=interval)
    scratch.unlink()
    collector = {name: _collector_cpu(directory, runs, interval, path) for name, path in outputs.items()}

    table = Table(
        f"CPU per run: 20-line script, {runs} runs at {round(interval * 1000)} ms (ms of CPU, user+system)",
        ["approach", "median", "p90", "mean", "beyond the script (median)", "target", "result"],
    )
    bare_median = statistics.median(bare)
    table.rows.append(["bare `bash script` (the script alone)", ms(bare_median), ms(p90(bare)),
                       ms(statistics.fmean(bare)), "0 (reference)", "", ""])
    table.rows.append([f"shell sidecar: bash script | sed > tmp && mv, per iteration, file on {labels[first]}",
                       ms(statistics.median(pipeline)), ms(p90(pipeline)), ms(statistics.fmean(pipeline)),
                       ms(statistics.median(pipeline) - bare_median), "", ""])
    table.rows.append(["shell sidecar: the same in a real bash while loop", "-", "-", ms(loop_mean),
                       f"{ms(loop_mean - statistics.fmean(bare)):.3f} (mean)", "", ""])
    for name, (own, windows, own_ticks, children, system) in collector.items():
        own_median = statistics.median(own)
        judged = name == first
        table.rows.append([f"edge-metrics run: its own CPU, scripts excluded, file on {labels[name]}",
                           ms(own_median), ms(p90(own)), ms(statistics.fmean(own)), ms(own_median),
                           f"<= {CPU_TARGET_MS:g} ms median" if judged else "",
                           table.judge(ms(own_median) <= CPU_TARGET_MS) if judged else ""])
        table.notes.append(f"file on {labels[name]}: {len(own)}/{windows} windows held exactly one run; "
                           f"/proc/PID/stat cross-check {ms(own_ticks):.3f} ms/run, of which "
                           f"{ms(system):.3f} ms in the kernel (stime) and {ms(own_ticks - system):.3f} ms in "
                           f"user space (utime; the split is sampled per tick: rough); "
                           f"the scripts (cutime+cstime) {ms(children):.3f} ms/run.")
    table.notes.insert(0, "Collector per-run figures: the daemon's own on-CPU time (/proc/PID/schedstat, ns) between "
                       "two samples taken half an interval after a run, children excluded; only windows holding "
                       "exactly one run are used. Cross-check: utime+stime from /proc/PID/stat over all runs (10 ms "
                       "ticks). Baselines: getrusage(RUSAGE_CHILDREN) around each iteration. Judged on the tmpfs "
                       "file, as deployed.")

    steps = step_medians(directory, outputs, runs=max(runs // 2, 1), interval=interval)
    breakdown = Table(f"Where a run's CPU goes: in-process, paced at {round(interval * 1000)} ms, "
                      f"median ms of CPU per step", ["step", "ms"])
    for name, seconds in steps.items():
        breakdown.rows.append([name.replace("file on disk", f"file on {labels['disk']}"), ms(seconds)])
    daemon_steps = [seconds for name, seconds in steps.items() if not name.startswith(("for scale", "write"))]
    write_first = steps[f"write_atomically, file on {first}"]
    breakdown.rows.append([f"sum of the daemon's steps (file on {first})", ms(sum(daemon_steps) + write_first)])
    breakdown.notes.append("The rest of the daemon's figure above is its loop: schedule, wake-up (select), the "
                           "full reload check once a second.")
    return [table, breakdown]


def _collector_cpu(directory: Path, runs: int, interval: float, textfile_dir: Path
                   ) -> tuple[list[float], int, float, float, float]:
    """Per-run own CPU (s) from windows with exactly one run, the window count, and the mean own, children and
    own-in-the-kernel CPU per run from /proc/PID/stat over the whole measurement."""
    with Daemon(directory, textfile_dir=textfile_dir) as daemon:
        daemon.wait_runs("bench20", 10, timeout=60)  # warm-up: imports done, caches filled
        # Align on a write (the file is replaced: new inode), then sample half an interval after each run.
        def replaced(previous: tuple[int, int]) -> Callable[[], bool]:
            def probe() -> bool:
                stat = daemon.output.stat()
                return (stat.st_ino, stat.st_mtime_ns) != previous
            return probe

        stat = daemon.output.stat()
        wait_until(replaced((stat.st_ino, stat.st_mtime_ns)), timeout=30, interval=0.01, what="a write", retry_on=())
        base = time.monotonic() + interval / 2
        cpu_ns: list[int] = []
        counts: list[int] = []
        start = procfs.cpu_times(daemon.pid)
        for index in range(runs + 1):
            delay = base + index * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            cpu_ns.append(procfs.own_cpu_ns(daemon.pid))
            counts.append(daemon.runs("bench20"))
        end = procfs.cpu_times(daemon.pid)
    own = [
        (cpu_ns[i + 1] - cpu_ns[i]) / 1e9 for i in range(runs) if counts[i + 1] - counts[i] == 1
    ]
    if not own:
        raise RuntimeError("no sampling window held exactly one run: is the machine overloaded?")
    total_runs = max(counts[-1] - counts[0], 1)
    return (own, runs, (end.own - start.own) / total_runs, (end.children - start.children) / total_runs,
            (end.system - start.system) / total_runs)


# -- 2. Memory ----------------------------------------------------------------------------------------------


def measure_rss(workdir: Path, runs: int, interval: float, cap_runs: int) -> Table:
    directory = workdir / "rss"
    directory.mkdir()
    write_script(directory, "bench20", echo_lines(20))
    write_config(directory, f"bench20:{round(interval * 1000)}ms")
    period = min(0.5, max(0.02, runs * interval / 100))
    samples: list[tuple[int, int]] = []  # (runs so far, VmRSS KiB)
    with Daemon(directory) as daemon:
        daemon.wait_runs("bench20", 1, timeout=60)
        deadline = time.monotonic() + runs * interval * 5 + 60
        while True:
            done = daemon.runs("bench20")
            samples.append((done, procfs.status_kib(daemon.pid, "VmRSS")))
            if done >= runs:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {done} of {runs} runs in time:\n{daemon.log.read_text()}")
            time.sleep(period)
        peak = procfs.status_kib(daemon.pid, "VmHWM")
    cap_peak, cap_after = _cap_peak(workdir, cap_runs)

    warm = [s for s in samples if s[0] >= runs // 10] or samples[-1:]
    first, last = warm[0], warm[-1]
    # The heap settles over the first few thousand runs (allocator arenas, interpreter caches), then stays flat;
    # a leak grows for ever, so it shows in the second half. Judged there; the whole span is shown too.
    middle = next(s for s in samples if s[0] >= last[0] // 2)
    steady_max = max(rss for _, rss in warm)
    table = Table(f"Memory: VmRSS over {runs} runs of the 20-line script at {round(interval * 1000)} ms (MiB)",
                  ["figure", "value", "target", "result"])
    table.rows.append([f"RSS after {first[0]} runs (end of warm-up)", first[1] / MIB, "", ""])
    table.rows.append([f"RSS after {middle[0]} runs", middle[1] / MIB, "", ""])
    table.rows.append([f"RSS after {last[0]} runs", last[1] / MIB, "", ""])
    table.rows.append(["steady RSS: max after warm-up", steady_max / MIB, f"<= {RSS_TARGET_MIB:g} MiB",
                       table.judge(steady_max / MIB <= RSS_TARGET_MIB)])
    table.rows.append([f"growth over the second half, run {middle[0]} to {last[0]}", (last[1] - middle[1]) / MIB,
                       f"<= {RSS_GROWTH_LIMIT_KIB / MIB:g} MiB",
                       table.judge(last[1] - middle[1] <= RSS_GROWTH_LIMIT_KIB)])
    table.rows.append([f"growth from run {first[0]} to {last[0]} (settling included)", (last[1] - first[1]) / MIB,
                       "", ""])
    table.rows.append(["peak RSS (VmHWM, start-up included)", peak / MIB, "", ""])
    table.rows.append([f"peak RSS, script printing past the 1 MiB stdout cap ({cap_runs} runs)", cap_peak / MIB,
                       "", ""])
    table.rows.append(["RSS after those runs", cap_after / MIB, "", ""])
    table.notes.append(f"{len(samples)} samples of /proc/PID/status, every {period:.2f} s; warm-up = first 10% of "
                       f"runs. MiB = 1024 KiB.")
    return table


def _cap_peak(workdir: Path, runs: int) -> tuple[int, int]:
    """VmHWM and VmRSS of a collector whose script prints more than the stdout cap, after `runs` runs."""
    directory = workdir / "cap"
    directory.mkdir()
    lines = STDOUT_CAP // 14 + 1000  # about 15 bytes a line: past the cap
    (directory / "big.txt").write_bytes(output_lines(lines))
    write_script(directory, "big", 'exec cat "$(dirname "$0")/big.txt"\n')
    write_config(directory, "big:1s")
    with Daemon(directory) as daemon:
        daemon.wait_runs("big", runs, timeout=runs * 10 + 60)
        return procfs.status_kib(daemon.pid, "VmHWM"), procfs.status_kib(daemon.pid, "VmRSS")


# -- 3. Throughput ------------------------------------------------------------------------------------------


def measure_throughput(workdir: Path, lines: int, repeats: int) -> Table:
    data = output_lines(lines)
    tune_gc()  # the garbage collector settings `edge-metrics run` uses
    target = workdir / "throughput" / "custom_metrics.prom"
    target.parent.mkdir()
    names = ["parse_output", "script_families", "render", "write_atomically"]
    cpu: dict[str, list[float]] = {name: [] for name in [*names, "total"]}
    wall: list[float] = []
    for _ in range(repeats):
        started = time.perf_counter()
        stamps = [time.process_time()]
        parsed = parse_output(data, prefix="edge_")
        stamps.append(time.process_time())
        families = script_families({"bench": parsed.samples})
        stamps.append(time.process_time())
        text = render(families)
        stamps.append(time.process_time())
        write_atomically(target, text)
        stamps.append(time.process_time())
        wall.append(time.perf_counter() - started)
        if len(parsed.samples) != lines or parsed.rejected:
            raise RuntimeError(f"parsed {len(parsed.samples)} samples and rejected {len(parsed.rejected)}")
        for index, name in enumerate(names):
            cpu[name].append(stamps[index + 1] - stamps[index])
        cpu["total"].append(stamps[-1] - stamps[0])
        del parsed, families, text
    table = Table(f"Throughput: {lines} lines ({len(data) / MIB / MIB:.1f} MiB, one in ten labelled), "
                  f"in-process, median of {repeats}", ["step", "CPU s", "wall s", "target", "result"])
    for name in names:
        table.rows.append([name, statistics.median(cpu[name]), "", "", ""])
    total, elapsed = statistics.median(cpu["total"]), statistics.median(wall)
    if lines == TARGET_LINES:
        table.rows.append(["parse + group + render + write", total, elapsed, f"<= {THROUGHPUT_TARGET_S:g} s",
                           table.judge(total <= THROUGHPUT_TARGET_S)])
    else:
        scaled = total * TARGET_LINES / lines
        table.rows.append(["parse + group + render + write", total, elapsed, "", ""])
        table.rows.append([f"the same scaled to {TARGET_LINES} lines (linear)", scaled, "",
                           f"<= {THROUGHPUT_TARGET_S:g} s", table.judge(scaled <= THROUGHPUT_TARGET_S)])
    table.notes.append(f"Output file {target.stat().st_size / MIB / MIB:.1f} MiB, written with fsync. Judged on CPU "
                       f"time (process_time), which other load on the machine does not inflate; wall time beside "
                       f"it. Garbage collector tuned as `edge-metrics run` does (edge_metrics.node.tune_gc).")
    return table


# -- 4. Start-up --------------------------------------------------------------------------------------------


def measure_startup(workdir: Path, trials: int) -> Table:
    directory = workdir / "startup"
    directory.mkdir()
    # $EPOCHREALTIME is a bash builtin: no `date` process between the script's start and the stamp.
    write_script(directory, "stamp", 'printf "%s\\n" "$EPOCHREALTIME" > "$BENCH_STAMP"\necho started=1\n')
    write_config(directory, "stamp:1h")
    first_run: list[float] = []
    first_file: list[float] = []
    for trial in range(trials):
        stamp = directory / f"stamp.{trial}"
        daemon = Daemon(directory, env={"BENCH_STAMP": str(stamp), "EDGE_SCRIPT_ENV": "BENCH_STAMP"})
        try:
            if daemon.output.exists():
                daemon.output.unlink()
            started = time.time()
            daemon.start()
            text = wait_until(lambda stamp=stamp: stamp.exists() and stamp.read_text().strip(),  # type: ignore[misc]
                              timeout=30, interval=0.01, what="the first run", log=daemon.log, retry_on=())
            first_run.append(float(text) - started)
            daemon.wait_runs("stamp", 1, timeout=30)
            first_file.append(daemon.output.stat().st_mtime - started)
        finally:
            daemon.stop()
    worst = max(first_run)
    table = Table(f"Start-up: process start -> first run, {trials} cold starts (ms)",
                  ["figure", "median", "worst", "target", "result"])
    table.rows.append(["first run starts (script's $EPOCHREALTIME)", ms(statistics.median(first_run)), ms(worst),
                       f"<= {STARTUP_TARGET_MS:g} ms", table.judge(ms(worst) <= STARTUP_TARGET_MS)])
    table.rows.append(["first metrics file written (its mtime)", ms(statistics.median(first_file)),
                       ms(max(first_file)), "", ""])
    table.notes.append("Start = time.time() just before spawning `edge-metrics run`; judged on the worst trial.")
    return table


# -- main ---------------------------------------------------------------------------------------------------

MEASUREMENTS = ("cpu", "rss", "throughput", "startup")


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000, help="runs for the memory measurement (10000)")
    parser.add_argument("--rss-interval-ms", type=int, default=10, help="script interval for it (10)")
    parser.add_argument("--cpu-runs", type=int, default=500, help="runs for the CPU measurement (500)")
    parser.add_argument("--cpu-interval-ms", type=int, default=50, help="script interval for it (50)")
    parser.add_argument("--cap-runs", type=int, default=5, help="runs of the past-the-stdout-cap script (5)")
    parser.add_argument("--lines", type=int, default=TARGET_LINES, help="lines for the throughput measurement")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the throughput measurement (3)")
    parser.add_argument("--startup-trials", type=int, default=5, help="cold starts measured (5)")
    parser.add_argument("--only", action="append", choices=MEASUREMENTS, help="run only these (repeatable)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if min(args.runs, args.cpu_runs, args.cap_runs, args.lines, args.repeats, args.startup_trials) < 1:
        parser.error("counts must be positive")
    chosen = args.only or list(MEASUREMENTS)
    # The collectors under test run in their own sessions: on SIGTERM unwind, so every `with Daemon` stops its
    # collector (and the temp directories go) instead of leaving them running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))

    fast = tmpfs_dir()
    load = os.getloadavg()
    print(f"# edge-metrics collector benchmark\n\n{platform.node()}: {os.cpu_count()} CPUs, "
          f"Linux {platform.release()}, Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M %Z')}, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    verdicts: list[bool] = []
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edge-bench.")))
        fast_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edge-bench.", dir=fast))) \
            if fast is not None else None
        jobs: dict[str, Callable[[], list[Table]]] = {
            "cpu": lambda: measure_cpu(workdir, args.cpu_runs, args.cpu_interval_ms / 1000, fast_dir),
            "rss": lambda: [measure_rss(workdir, args.runs, args.rss_interval_ms / 1000, args.cap_runs)],
            "throughput": lambda: [measure_throughput(workdir, args.lines, args.repeats)],
            "startup": lambda: [measure_startup(workdir, args.startup_trials)],
        }
        for name in MEASUREMENTS:
            if name in chosen:
                for table in jobs[name]():
                    table.show()
                    verdicts.extend(table.verdicts)
    missed = verdicts.count(False)
    print(f"\n{len(verdicts) - missed} PASS, {missed} MISS")
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
