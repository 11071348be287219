"""`make fleet` / `python -m bench.fleet`: build the fleet, run the scenarios, print the tables.

Everything started is stopped and every namespace removed on exit, also on an error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from bench.fleet.centre import STORES
from bench.fleet.fleet import Figures, Fleet, Settings
from bench.fleet.node import PATHS
from bench.fleet.report import readings_table, scenarios_table
from tests.helpers import Processes


def seconds(text: str) -> float:
    """`90`, `90s`, `10m`, `1h` -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__)
    parser.add_argument("--nodes", type=int, default=5, help="simulated edge nodes (default 5)")
    parser.add_argument("--store", choices=STORES, default="prometheus", help="the central store")
    parser.add_argument("--path", choices=PATHS, default="push", help="collector -> vmagent path (shipped: push)")
    parser.add_argument("--scrape-interval", default="15s", help="vmagent's scrape interval (shipped: 15s)")
    parser.add_argument("--collector-interval", default="10s", help="the script's interval (shipped: 10s)")
    parser.add_argument("--cut-fraction", type=float, default=0.2, help="share of nodes cut off (default 0.2)")
    parser.add_argument("--steady", type=seconds, default=seconds("45s"), help="steady-state period")
    parser.add_argument("--outage", type=seconds, default=seconds("10m"), help="partition length")
    parser.add_argument("--centre-down", type=seconds, default=seconds("30s"), help="central store down for")
    parser.add_argument("--herd", type=seconds, default=seconds("1m"), help="fleet-wide outage before the herd")
    parser.add_argument("--scenarios", default="steady,partition,restart,herd", help="comma-separated subset")
    parser.add_argument("--rate-limit", type=int, help="vmagent -remoteWrite.rateLimit, bytes/s (shipped: 102400)")
    parser.add_argument("--second-centre", action="store_true", help="send to two centres (HA flags variant)")
    parser.add_argument("--drain-timeout", type=seconds, default=seconds("10m"), help="give up on a catch-up")
    parser.add_argument("--workdir", type=Path, help="keep queues, data and logs here (default: a temp dir)")
    args = parser.parse_args(argv)
    if not 1 <= args.nodes <= 1000:
        parser.error("--nodes must be between 1 and 1000")
    return args


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace, workdir: Path) -> int:
    settings = Settings(
        nodes=args.nodes,
        store=args.store,
        path=args.path,
        scrape_interval=args.scrape_interval,
        collector_interval=args.collector_interval,
        cut_fraction=args.cut_fraction,
        drain_timeout=args.drain_timeout,
        rate_limit=args.rate_limit,
        second_centre=args.second_centre,
    )
    log = lambda message: print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)  # noqa: E731
    procs = Processes()
    fleet = Fleet(settings, procs, workdir, log)
    try:
        fleet.start()
        wanted = args.scenarios.split(",")
        figures: list[Figures] = []
        if "steady" in wanted:
            figures.append(fleet.steady(args.steady))
        if "partition" in wanted:
            figures.append(fleet.partition(args.outage, reboot=True))
        if "restart" in wanted:
            figures.append(fleet.centre_restart(args.centre_down))
        if "herd" in wanted:
            figures.append(fleet.herd(args.herd))
        final = fleet.account()
        series = fleet.series_per_node()
        ingested = fleet.centre.ingested_samples()
    finally:
        fleet.close()
    what = "script runs" if args.path == "push" else "scrapes"
    print()
    print(f"{args.nodes} nodes, {args.store}, {args.path} path, scrape every {args.scrape_interval}")
    print(f"series per node {series:.0f}; samples taken in by the centre since its last start {ingested:.0f}")
    print(scenarios_table(figures))
    print()
    print(readings_table(final, what))
    return 0 if all(r.ok for r in final) and not any(f.lost for f in figures) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return run(args, args.workdir)
    with tempfile.TemporaryDirectory(prefix="fleet-") as tmp:
        return run(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
