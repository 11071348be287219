"""Makes docs/img/edge-*.png: a short, real scenario on the e2e stack, then deploy/grafana/render.py.

    .venv/bin/python -m tests.grafana.pictures [--out docs/img] [--minutes 9]

Two nodes write to one central Prometheus 3.5, in push mode as the DaemonSet runs: `bupt-a` runs
space_server against simulated I2C sensors; `edge-node-01` runs jetson_nano on a fake sysfs tree
where one thermal zone cannot be read (its script exits 1 every run: a failing script). Midway the
centre is stopped for about two minutes, so the pictures show vmagent's backlog growing and draining
and the replayed samples arriving out of order. Everything is real (components from
.cache/components); it takes about `--minutes`.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

from testbed.paths import EDGE_METRICS
from testbed.pipeline import Pipeline
from testbed.push import push_url
from tests.helpers import REPO, processes

MODEL = REPO / "scripts" / "models" / "space_server.yaml"
RENDER = REPO / "deploy" / "grafana" / "render.py"


def fake_sysfs(root: Path) -> Path:
    """Thermal zones as on a Jetson Nano; zone 2's temp reads as garbage, as a sensor that is off."""
    for number, (kind, temp) in enumerate([("CPU-therm", "41500"), ("GPU-therm", "39000"), ("PMIC-Die", "off")]):
        zone = root / "class" / "thermal" / f"thermal_zone{number}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(temp + "\n")
    return root


def main() -> int:
    # SIGTERM ends the run like Ctrl-C: through the `with` below, which stops every process it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    parser.add_argument("--minutes", type=float, default=9)
    parser.add_argument("--workdir", type=Path, default=REPO / ".run" / "pictures")
    args = parser.parse_args()
    workdir = args.workdir
    subprocess.run(["rm", "-rf", str(workdir)], check=True)
    workdir.mkdir(parents=True)
    started = time.time()
    with processes() as procs:
        # direct to Prometheus: not yet run through the gate (needs Chromium and minutes of a quiet machine to check)
        pipeline = Pipeline(
            procs, workdir, node="bupt-a", scrape_interval="5s", other_nodes=["edge-node-01"], enforce_node=False
        )
        second = pipeline.centre.node("edge-node-01", workdir / "edge-node-01", scrape_interval="5s")
        pipeline.start_infrastructure()
        second.start_node_exporter()
        second.start_vmagent()
        config = workdir / "nodes.conf"
        config.write_text("bupt-a=space_server:5s\nedge-node-01=jetson_nano:10s\n")
        # Push mode, as the DaemonSet runs it; this machine's clock may be unsynchronised (docs/time.md).
        common = ["--scripts-dir", str(REPO / "scripts"), "--clock-check", "none"]
        pipeline.node.start_collector(
            config=config,
            extra_args=[*common, "--push-url", push_url(pipeline.node)],
            wrapper=[str(EDGE_METRICS), "simulate", "--model", str(MODEL), "--"],
        )
        sysfs = str(fake_sysfs(workdir / "sysfs"))
        second.start_collector(
            config=config,
            extra_args=[*common, "--push-url", push_url(second)],
            env={"EDGE_SYSFS_ROOT": sysfs, "EDGE_SCRIPT_ENV": "EDGE_SYSFS_ROOT"},
        )
        total = args.minutes * 60
        time.sleep(total * 0.35)
        print("pictures: stopping the centre for two minutes", file=sys.stderr)
        pipeline.central.stop()
        time.sleep(120)
        pipeline.central.start()
        print("pictures: centre back; waiting for the backlog to drain", file=sys.stderr)
        pipeline.wait_drained(timeout=300)
        time.sleep(max(total - (time.time() - started), 30))
        args.out.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, str(RENDER), "--prometheus", pipeline.central.url, "--node", "bupt-a",
             "--ca-file", str(pipeline.pki.ca), "--password-file", str(pipeline.pki.dir / "admin.password"),
             "--out", str(args.out), "--range", str(int(time.time() - started))],
            check=True,
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
