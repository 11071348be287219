"""`make bench-centre` / `python -m bench.centre`: how many nodes the centre as shipped takes on this machine.

Needs root (`ip netns`: the profiled node runs in a namespace, as bench/fleet's do). The centre from deploy/ as
bench/fleet starts it (vmauth with make-certs' tokens and TLS -> `edge-metrics gate`
with gate.flags -> Prometheus 3.5 or VictoriaMetrics 1.145). First one real node (bench/centre/profile.py) writes
through it for a window: what it stored is what every simulated node then sends. Then N simulated nodes, each
with its own token and connection, in steps of N until something gives (rejected writes, stored behind offered,
lag, a process at a full core, a container over its memory limit); then the drain of a fleet's backlog after an
outage. Prints the tables of docs/scale.md ("The centre's capacity"); exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.centre.drain import drain
from bench.centre.load import Door, Fleet, templates
from bench.centre.measure import Step, cpu, pids, rss, store_series
from bench.centre.profile import PROFILE_NODE, measure
from bench.centre.report import drain_table, extrapolation_table, profile_table, steps_table
from bench.centre.steps import run_step
from bench.entry import load_average, run, stop_on_sigterm
from bench.fleet.centre import STORES, make_centre
from bench.fleet.net import FleetNetwork, remove_leftovers
from testbed.flags import read_flags
from testbed.paths import VMAGENT_FLAGS
from testbed.processes import Processes, processes

_PLACEHOLDERS = {"REMOTE_WRITE_URL": "", "NODE_NAME": "", "CLUSTER": ""}  # only the rate limit is read
SMOKE = {"stores": "prometheus", "steps": "2,4", "step_seconds": 6.0, "warmup": 3.0, "scrape_interval": "2s",
         "collector_interval": "2s", "profile_window": 5.0, "drain_nodes": 2, "drain_outage": 10.0}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.centre", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", default=",".join(STORES), help=f"comma-separated, of {', '.join(STORES)}")
    parser.add_argument("--steps", default="10,25,50,100,200,400", help="the N of each step (10,25,50,100,200,400)")
    parser.add_argument("--step-seconds", type=float, default=45.0, help="each step's length (45)")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds of a step not measured (15)")
    parser.add_argument("--scrape-interval", default="15s", help="the profiled node's scrape interval (shipped 15s)")
    parser.add_argument("--collector-interval", default="10s", help="its script's interval (nodes.conf: 10s)")
    parser.add_argument("--profile-window", type=float, help="seconds the real node is measured (2 scrapes + 5)")
    parser.add_argument("--drain-nodes", type=int, default=10, help="nodes whose backlog drains at once (10)")
    parser.add_argument("--drain-outage", type=float, default=600.0, help="the outage their backlog covers, s (600)")
    parser.add_argument("--smoke", action="store_true", help="tiny and fast: Prometheus only, 2 and 4 nodes")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="work in DIR and keep it (logs, configs)")
    args = parser.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    if args.profile_window is None:
        args.profile_window = 2 * float(args.scrape_interval.rstrip("s")) + 5
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    steps = [int(n) for n in args.steps.split(",")]
    flags = dict(f.partition("=")[::2] for f in read_flags(VMAGENT_FLAGS, _PLACEHOLDERS))
    rate_limit = float(flags["-remoteWrite.rateLimit"])
    print(f"# bench/centre, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load_average()}", flush=True)
    for store in args.stores.split(","):
        with tempfile.TemporaryDirectory(prefix="bench-centre-") as temp, processes() as procs:
            root = args.keep / store if args.keep else Path(temp)
            root.mkdir(parents=True, exist_ok=True)
            remove_leftovers()
            net = FleetNetwork()
            try:
                run_store(procs, root, net, store, args, steps, rate_limit)
            finally:
                procs.cleanup()
                net.close()
    print(f"\n# load average at the end {load_average()}")
    return 0


def run_store(procs: Processes, root: Path, net: FleetNetwork, store: str, args: argparse.Namespace,
              steps: Sequence[int], rate_limit: float) -> None:
    nodes = [f"node-{i:04d}" for i in range(max(steps))]
    drainers = [f"drain-{i:04d}" for i in range(args.drain_nodes)]
    centre = make_centre(store, procs, root / "centre", host=net.host_address, nodes=[PROFILE_NODE, *nodes, *drainers],
                         scrape_interval="15s")
    centre.start()
    profile = measure(procs, root / "profile", centre, link=net.add_node(), scrape=args.scrape_interval,
                      script=args.collector_interval, window=args.profile_window)
    tmpls = templates(profile)
    print(f"\n## What a node sends ({store} centre; {args.profile_window:g} s of a real node, scrape every "
          f"{args.scrape_interval}, script every {args.collector_interval}; load average {load_average()})\n")
    print(profile_table(profile, tmpls), flush=True)
    tokens = {name: centre.credentials.token(name) for name in [*nodes, *drainers]}
    fleet = Fleet(Door(net.host_address, centre.ingest.port, centre.credentials.context()), tokens, profile, tmpls)
    ids = pids(centre)
    base = (rss(ids)["store"], store_series(centre))
    print(f"\n## Steps ({store}; {args.step_seconds:g} s each, the last {args.step_seconds - args.warmup:g} s "
          f"measured; load average {load_average()} at the start)\n", flush=True)
    done: list[Step] = []
    for n in steps:
        done.append(run_step(fleet, centre, nodes[:n], seconds=args.step_seconds, warmup=args.warmup, base=base))
        print(steps_table(done).splitlines()[-1] if len(done) > 1 else steps_table(done), flush=True)
        if done[-1].gave:
            break
    print(f"\nload average {load_average()}; what gave: {done[-1].gave or 'nothing, up to the last step'}")
    before = cpu(ids)
    sent, seconds = drain(fleet, drainers, outage=args.drain_outage, rate_limit=rate_limit)
    after = cpu(ids)
    cores = {name: (after[name] - before[name]) / seconds for name in ids}
    print(f"\n## Drain ({store}: {args.drain_nodes} nodes' backlog of a {args.drain_outage:g} s outage "
          f"at once, rate limit {rate_limit:.0f} B/s per node; load average {load_average()})\n")
    print(drain_table(nodes=args.drain_nodes, outage=args.drain_outage, sent=sent, seconds=seconds, cores=cores,
                      rate_limit=rate_limit))
    stored = sum(s.samples for s in sent if s.status == 204)
    wire = sum(s.nbytes for s in sent if s.status == 204) / stored if stored else 0.0
    held = [s for s in done if not s.gave]
    print(f"\n## An hour's outage, extrapolated ({store}: the drain's {stored / seconds:.0f} samples/s, a node's "
          f"{profile.samples_per_s:.1f} samples/s, {wire:.1f} bytes/sample)\n")
    print(extrapolation_table(rate=stored / seconds, node_rate=profile.samples_per_s, bytes_per_sample=wire,
                              rate_limit=rate_limit, fleet_sizes=sorted({*(s.nodes for s in held[-1:]), 100, 1000})))
    print(f"\nheld: {held[-1].nodes if held else 0} nodes ({held[-1].stored if held else 0:.0f} samples/s stored)",
          flush=True)


if __name__ == "__main__":
    run(main)
