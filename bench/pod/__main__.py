"""`make bench-pod` / `python -m bench.pod`: the board's bill.

The edge pod as rendered from deploy/kubernetes (the DaemonSet's containers, args, env, volumes, ConfigMaps),
run as tests/k8s/test_pod_spec_run.py runs it (tests/k8s/podsim.py: the collector under the I2C simulator with
the node bupt-a's sensors), pushing to the manifests' centre (the central-prometheus Deployment: vmauth, the
central vmagent, Prometheus) on loopback. Measured per container: a warm-up, a steady state at the shipped
intervals, an outage of the whole centre and the drain of what the node queued. Everything started is stopped
on exit, also on an error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from bench.pod import fsyncs, manifest, report, tree
from bench.pod.images import pod_images
from bench.pod.phases import Probe, Prober, Window, for_seconds, http_probe, watch
from edge_metrics.durations import parse_duration
from testbed.exposition import metric_sum, parse_metrics
from testbed.net import http_get
from tests.helpers import wait_until
from tests.k8s.manifests import rendered
from tests.k8s.test_pod_spec_run import NODE_NAME, Deployment, run_pods

VMAGENT_PORT = 8429  # the containerPort of the DaemonSet's vmagent
NODE_EXPORTER_PORT = 9100


def seconds(text: str) -> float:
    """A Go-style duration (`90s`, `10m`, `500ms`), as the manifests write them."""
    try:
        return float(parse_duration(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pod", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warmup", type=seconds, default=seconds("2m"), help="not measured (default 2m)")
    parser.add_argument("--steady", type=seconds, default=seconds("10m"),
                        help="steady state, in whole periods of the pod's load when longer than one (default 10m)")
    parser.add_argument("--outage", type=seconds, default=seconds("10m"), help="the centre down (default 10m)")
    parser.add_argument("--drain-timeout", type=seconds, default=seconds("15m"), help="give up on the drain")
    parser.add_argument("--sample", type=seconds, default=seconds("500ms"), help="RSS sampling interval (500ms)")
    parser.add_argument("--no-fsync-trace", action="store_true", help="run without strace (no fsync counts)")
    parser.add_argument("--workdir", type=Path, help="keep the pods' files and logs here (default: a temp dir)")
    return parser.parse_args(argv)


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main_processes(deployment: Deployment, names: Sequence[str]) -> dict[str, int]:
    found = {}
    for name in names:
        leader: int = deployment.started["procs"][name].pid

        def started(leader: int = leader) -> int | None:
            return tree.main_process(leader)

        found[name] = wait_until(started, timeout=30, what=f"{name}'s program")
    return found


def probes(deployment: Deployment, specs: Sequence[manifest.ContainerSpec]) -> list[Probe]:
    found = []
    for spec in specs:
        if spec.probe_period_s is None:
            continue
        container = deployment.container(spec.name)
        if spec.probe_kind == "exec":
            found.append(Probe(spec.name, spec.probe_period_s, container.run_liveness_probe))
        elif spec.probe_kind == "httpGet":
            timeout = float(container.spec["livenessProbe"].get("timeoutSeconds", 1))
            found.append(Probe(spec.name, spec.probe_period_s, http_probe(container.http_probe_url("livenessProbe"),
                                                                          timeout)))
    return found


def vmagent_metrics(deployment: Deployment) -> dict[str, float]:
    return parse_metrics(http_get(deployment.url(VMAGENT_PORT) + "/metrics").decode())


def pending_bytes(deployment: Deployment) -> float:
    return metric_sum(vmagent_metrics(deployment), "vmagent_remotewrite_pending_data_bytes")


def script_runs(deployment: Deployment) -> float:
    output = Path(deployment.container("metric-sidecar").env["EDGE_OUTPUT"])
    return metric_sum(parse_metrics(output.read_text()), "edge_collector_script_runs_total")


def stop_centre(deployment: Deployment) -> None:
    for name, proc in list(deployment.started["central"].items()):
        deployment.procs.stop(proc, timeout=30)
        del deployment.started["central"][name]


def start_centre(deployment: Deployment) -> None:
    for spec in deployment.central.spec["containers"]:
        name = spec["name"]
        proc = deployment.container(name).start(deployment.procs, deployment.logs / f"{name}.log")
        deployment.started["central"][name] = proc


def drained(deployment: Deployment, poll_s: float, timeout: float) -> Callable[[float], bool]:
    """Done when vmagent holds nothing (its /metrics read at most every `poll_s`: each read costs it CPU)."""
    last = [-poll_s]

    def done(elapsed: float) -> bool:
        if elapsed - last[0] < poll_s:
            return False
        last[0] = elapsed
        if elapsed > timeout:
            raise TimeoutError(f"the node's queue did not drain in {timeout:.0f} s")
        return pending_bytes(deployment) == 0

    return done


def top_collectors(deployment: Deployment, count: int) -> str:
    """node_exporter's costliest collectors in its last scrape (its own figures)."""
    metrics = parse_metrics(http_get(deployment.url(NODE_EXPORTER_PORT) + "/metrics").decode())
    durations = {series.split('collector="')[1].split('"')[0]: value for series, value in metrics.items()
                 if series.startswith("node_scrape_collector_duration_seconds{")}  # fmt: skip
    top = sorted(durations.items(), key=lambda item: -item[1])[:count]
    return ", ".join(f"{name} {1000 * value:.1f} ms" for name, value in top)


def profile_rows(
    steady: Window, shipped: manifest.Intervals, runs: float, mains: Mapping[str, int], collectors: str
) -> list[tuple[str, str, str]]:
    sidecar, exporter, agent = (steady.containers[n] for n in ("metric-sidecar", "node-exporter", "vmagent"))
    scripts_cpu = sidecar.cpu_s - sidecar.own_cpu_s - sidecar.probe_cpu_s
    scrapes = steady.seconds / shipped.scrape
    rows = [
        ("metric-sidecar", "the collector's own CPU (Python)", f"{100 * sidecar.own_cpu_s / steady.seconds:.3f} %"),
        ("metric-sidecar", "its scripts (bash, i2cget, timeout, awk)", f"{100 * scripts_cpu / steady.seconds:.3f} %"),
        ("metric-sidecar", "the exec liveness probe (bash)", f"{100 * sidecar.probe_cpu_s / steady.seconds:.3f} %"),
        ("metric-sidecar", f"CPU per script run ({runs:.0f} runs)",
         f"{1000 * (sidecar.cpu_s - sidecar.probe_cpu_s) / max(runs, 1):.1f} ms"),
        ("node-exporter", f"CPU per scrape ({scrapes:.0f} scrapes)", f"{1000 * exporter.cpu_s / scrapes:.1f} ms"),
        ("node-exporter", "costliest collectors (its own timing)", collectors),
        ("vmagent", "CPU per second (scrapes, 1 s flushes, imports)", f"{1000 * agent.cpu_s / steady.seconds:.2f} ms"),
    ]  # fmt: skip
    for name, pid in mains.items():
        anon, file = tree.rss_split_kib(pid)
        rows.append((name, "main process RSS: anonymous / file-backed", f"{anon / 1024:.1f} / {file / 1024:.1f} MiB"))
    return rows


@dataclass(frozen=True, slots=True)
class Twin:
    """The pod run under strace beside the measured one: what it flushed and started, per container."""

    deployment: Deployment
    logs: Path
    tracers: Mapping[str, int]  # container -> the pid of its strace

    def counts(self, window: Window, end: float | None = None) -> tuple[report.Flushes, dict[str, int]]:
        """Flushes and programs started in `window` (until `end` when the twin finished later)."""
        flushes, started = {}, {}
        for name, pid in self.tracers.items():
            log = fsyncs.log_of(self.logs, pid)
            stop = window.end if end is None else end
            flushes[name] = fsyncs.by_volume(fsyncs.read_flushes(log), self.volumes, window.start, stop)
            started[name] = fsyncs.execs(log, window.start, stop)
        return report.Flushes(flushes), started

    @property
    def volumes(self) -> dict[str, Path]:
        return dict(self.deployment.edge.volumes)


def start_pods(
    stack: ExitStack, objects: list[Any], work: Path, memory: Path, *, traced: bool
) -> tuple[Deployment, Path]:
    """One pod set (edge pod and centre) under `work`; with `traced`, every program under strace."""
    name = "twin" if traced else "measured"
    logs, pods, tmpfs = work / f"{name}-fsyncs", work / name, memory / name
    for directory in (logs, pods, tmpfs):
        directory.mkdir()
    images = pod_images(tmpfs, logs if traced else None)
    deployment = stack.enter_context(run_pods(objects, pods, images=images, memory_root=tmpfs))
    return deployment, logs


def readings_at_centre(deployment: Deployment) -> None:
    wait_until(lambda: deployment.query(f'edge_collector_script_success{{node="{NODE_NAME}"}} == 1'),
               timeout=180, interval=2, what="the node's readings at the centre")  # fmt: skip


def run(args: argparse.Namespace, work: Path, memory: Path) -> int:
    objects = rendered()
    specs = manifest.containers(objects)
    names = [spec.name for spec in specs]
    shipped = manifest.intervals(objects, NODE_NAME)
    period = shipped.hyperperiod()
    # Whole periods, so the window holds each periodic job equally often (a smoke run asks for less: as given).
    steady_s = -(-args.steady // period) * period if args.steady >= period else args.steady
    load = os.getloadavg()
    print(f"# The board's bill: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cores, nice {os.nice(0)}")
    print(f"node {NODE_NAME}: scripts {', '.join(f'{n} every {i:g} s' for n, i in shipped.scripts) or 'none'}; "
          f"heartbeat {shipped.heartbeat:g} s; vmagent scrape {shipped.scrape:g} s; liveness probes "
          f"{', '.join(f'{p:g} s' for p in shipped.probes)}: the load repeats every {period:g} s")
    print(f"phases: warm-up {args.warmup:g} s, steady {steady_s:g} s ({steady_s / period:g} periods), "
          f"outage {args.outage:g} s, drain until vmagent holds nothing", flush=True)
    windows: list[Window] = []
    with ExitStack() as stack:
        deployment, _ = start_pods(stack, objects, work, memory, traced=False)
        pods = [deployment]
        twin: Twin | None = None
        if not args.no_fsync_trace:
            twin_deployment, twin_logs = start_pods(stack, objects, work, memory, traced=True)
            pods.append(twin_deployment)
        for pod in pods:
            readings_at_centre(pod)
        mains = main_processes(deployment, names)
        twin_mains: dict[str, int] = {}
        if len(pods) > 1:
            twin_mains = main_processes(pods[1], names)
            twin = Twin(pods[1], twin_logs, {name: tree.parent(pid) for name, pid in twin_mains.items()})
        prober = Prober(probes(deployment, specs))
        watch("warm-up", mains, prober, interval=args.sample, done=for_seconds(args.warmup))
        runs_before = script_runs(deployment)
        twin_before = {name: tree.usage(pid).cpu_s for name, pid in twin_mains.items()}
        windows.append(watch("steady", mains, prober, interval=args.sample, done=for_seconds(steady_s)))
        runs = script_runs(deployment) - runs_before
        twin_share = sum(tree.usage(pid).cpu_s - twin_before[name] for name, pid in twin_mains.items())
        twin_share /= windows[0].seconds
        collectors = top_collectors(deployment, 3)
        for pod in pods:
            stop_centre(pod)
        windows.append(watch("outage", mains, prober, interval=args.sample, done=for_seconds(args.outage)))
        queued = pending_bytes(deployment)
        for pod in pods:
            start_centre(pod)
        windows.append(watch("drain", mains, prober, interval=args.sample,
                             done=drained(deployment, 5.0, args.drain_timeout)))  # fmt: skip
        if twin is not None:
            wait_until(lambda: pending_bytes(twin.deployment) == 0, timeout=args.drain_timeout, interval=5,
                       what="the twin's queue drained")  # fmt: skip
        twin_drained = time.time()
        profile = profile_rows(windows[0], shipped, runs, mains, collectors)
    # Each strace has flushed its log once its pod has stopped.
    counted = [twin.counts(w, twin_drained if w.name == "drain" else None) if twin else (report.Flushes(None), {})
               for w in windows]  # fmt: skip
    flushes = [flush for flush, _ in counted]
    print("\n## The pod at the shipped intervals (steady state), beside the manifest\n")
    print(report.bill_table(specs, windows[0], flushes[0]))
    print()
    for line in report.verdict(windows[0], names):
        print(line)
    if twin is not None:
        print(f"the twin under strace, same window: {100 * twin_share:.2f} % of one core (its probes not run; "
              "strace stops each fork)")
    print(f"\n## Through a {args.outage:g} s outage of the centre and the drain\n")
    print(report.phases_table(names, list(zip(windows, flushes, strict=True))))
    drain = windows[2]
    print(f"\nqueued by vmagent at the end of the outage: {queued / 1024:.0f} KiB; drained in {drain.seconds:.0f} s")
    started = counted[0][1].get("metric-sidecar")
    if started is not None:
        profile.insert(4, ("metric-sidecar", "programs started per script run (execve, counted on the twin)",
                           f"{started / max(runs, 1):.0f}"))  # fmt: skip
    print("\n## Where it goes (steady state)\n")
    print(report.profile_table(profile))
    load = os.getloadavg()
    print(f"\nload average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0

def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    # The machine is shared: the pod and this bench yield to everyone else's work.
    os.nice(max(0, 10 - os.nice(0)))
    with (tempfile.TemporaryDirectory(prefix="bench-pod-") as temp,
          tempfile.TemporaryDirectory(prefix="bench-pod-", dir="/dev/shm") as memory):  # fmt: skip
        work = Path(temp) if args.workdir is None else args.workdir
        work.mkdir(parents=True, exist_ok=True)
        return run(args, work, Path(memory))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
