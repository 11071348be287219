"""`make demo`: the whole pipeline on this machine, on loopback and free ports, until Ctrl-C.

    .venv/bin/python -m testbed.demo

  collector (bundled default, simulated I2C sensors) -> vmagent (disk queue; the textfile through
  node_exporter for the collector's own metrics) -> vmauth -> the gate -> central Prometheus (remote-write
  receiver, out-of-order window) -> Alertmanager -> a webhook receiver that appends every notification to
  $run/webhook.log

Secure as shipped (docs/security.md): tools/make-certs.sh makes a CA, the centre's certificate and the node's
token in $run/pki; vmagent writes over TLS with its token to vmauth, whose gate sets the node label from the
token and writes to Prometheus, which serves only TLS with basic auth. EDGE_DEMO_INSECURE=1: plain HTTP straight
to Prometheus, no authentication (a warning says so). EDGE_DEMO_TEXTFILE=1: the textfile-only path instead of
push mode. NODE_NAME (bupt-a), CLUSTER (demo) and EDGE_DEMO_DIR (.run/demo) move the rest.

Every program uses the configuration in deploy/ as it is, started by the same classes as the e2e tests; only
ports and paths are substituted. Ctrl-C (or SIGTERM) stops everything: each program runs in its own process
group, every group is killed, then the demo checks that none is left.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from testbed.alertmanager import Alertmanager
from testbed.centre import Centre
from testbed.node import Node
from testbed.paths import EDGE_METRICS, REPO, SIM_LIB, components
from testbed.poll import wait_until
from testbed.processes import Processes, exists, processes
from testbed.webhook import webhook_receiver

MODEL = REPO / "scripts" / "models" / "space_server.yaml"
DEMO_UI = REPO / "tools" / "demo-ui"


class Stopped(Exception):
    """Ctrl-C or SIGTERM: the demo ends with status 0 once everything is stopped."""


class Failed(Exception):
    """Something the demo waits for did not come, or a program died: it ends with status 1."""


@dataclass(frozen=True, slots=True)
class Settings:
    node: str
    cluster: str
    run: Path
    secure: bool
    push: bool

    @classmethod
    def from_environment(cls, env: os._Environ[str] | dict[str, str]) -> Settings:
        return cls(
            node=env.get("NODE_NAME", "bupt-a"),
            cluster=env.get("CLUSTER", "demo"),
            run=Path(env.get("EDGE_DEMO_DIR", str(REPO / ".run" / "demo"))),
            secure=env.get("EDGE_DEMO_INSECURE", "0") != "1",
            push=not env.get("EDGE_DEMO_TEXTFILE"),
        )


def say(message: str) -> None:
    print(f"demo: {message}", file=sys.stderr, flush=True)


def main() -> int:
    settings = Settings.from_environment(os.environ)
    subprocess.run(["bash", str(REPO / "tools" / "fetch-components.sh")], check=True)
    if not EDGE_METRICS.exists():
        say("run `make venv` first (make demo does)")
        return 1
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    code = 0
    with processes() as procs:
        try:
            run_demo(procs, settings)
        except Stopped:
            code = 0
        except Failed as error:
            say(str(error))
            code = 1
        finally:
            # A second Ctrl-C must not cut the cleanup short.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            started = procs.started()
            say(f"stopping {len(started)} programs")
    survivors = [proc.pid for proc in started if exists(proc.pid, group=True)]
    for pgid in survivors:
        say(f"process group {pgid} survived")
    if survivors:
        return 1
    say("stopped; nothing left running")
    return code


def _stop(signum: int, frame: FrameType | None) -> None:
    raise Stopped


def run_demo(procs: Processes, settings: Settings) -> None:
    run = settings.run
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    if not settings.secure:
        say("WARNING: EDGE_DEMO_INSECURE=1: no TLS, no authentication; anyone on this machine can write to")
        say("WARNING: and read from the centre. Never run the centre like this where others can reach it.")
    centre = Centre(
        procs,
        run,
        nodes=[settings.node],
        scrape_interval=None,  # production's 15 s
        prometheus_args=[f"--web.user-assets={DEMO_UI}"],
        cluster=settings.cluster,
        secure=settings.secure,
    )
    node = centre.node(settings.node, run, scrape_interval=None)
    with webhook_receiver(log=run / "webhook.log") as hook:
        # Alertmanager as deployed, its webhooks (the dead man's switch too: the demo never leaves this
        # machine) pointed at the demo's receiver instead of yours; production's timings.
        alertmanager = Alertmanager(
            procs, run, webhook_url=hook.url, timings={}, pki=centre.pki, secure=settings.secure
        )
        centre.central.send_alerts_to(alertmanager.address)
        start_all(centre, node, alertmanager, settings)
        query = wait_for_readings(centre, settings)
        print(banner(centre, node, alertmanager, settings, query), flush=True)
        watch(procs, run)


def start_all(centre: Centre, node: Node, alertmanager: Alertmanager, settings: Settings) -> None:
    run = settings.run
    say(f"central Prometheus on {centre.central.url}")
    if settings.secure:
        ingest = centre.ingest
        say(f"vmauth (TLS, one token per node) on 127.0.0.1:{ingest.port}, the gate on 127.0.0.1:{ingest.gate_port}")
    _waited("the centre", centre.start, run)
    say(f"node_exporter on 127.0.0.1:{node.node_exporter_port}, textfile directory {node.textfile_dir}")
    _waited("node_exporter", node.start_node_exporter, run)
    say(f"vmagent on {node.vmagent_address}, disk queue {node.queue_dir}")
    _waited("vmagent", node.start_vmagent, run)
    say(f"Alertmanager on {alertmanager.url}, notifications to {run / 'webhook.log'}")
    _waited("Alertmanager", alertmanager.start, run)
    start_collector(node, settings)


def _waited(what: str, start: Callable[[], None], run: Path) -> None:
    try:
        start()
    except TimeoutError as error:
        raise Failed(f"timed out waiting for {what} (logs in {run}): {error}") from None


def start_collector(node: Node, settings: Settings) -> None:
    extra: list[str] = []
    # Push mode, as the DaemonSet runs it: readings go to vmagent with their own time (docs/time.md); the textfile
    # carries the collector's own metrics.
    if settings.push:
        extra += ["--push-url", f"http://{node.vmagent_address}/api/v1/import/prometheus"]
        extra += ["--spool-dir", str(settings.run / "spool")]
        if not clock_synchronised():
            # A machine without NTP (a container, a VM synced by its hypervisor) would hold every reading.
            say("this machine's clock is not synchronised (adjtimex): the demo's collector trusts it"
                " (--clock-check none)")
            extra += ["--clock-check", "none"]
        say(f"push mode: readings to vmagent's /api/v1/import/prometheus, spool {settings.run / 'spool'}")
    wrapper: list[str] = []
    if SIM_LIB.exists() and MODEL.exists():
        say(f"collector for node {settings.node} on the bundled default, under the I2C simulator ({MODEL})")
        wrapper = [str(EDGE_METRICS), "simulate", "--model", str(MODEL), "--"]
    else:
        say(f"no simulator ({SIM_LIB} or {MODEL} missing: run `make sim`); the collector runs on real I2C")
        say("buses, so on this machine its scripts fail and only edge_collector_* metrics flow")
    node.start_collector(config=None, extra_args=extra, wrapper=wrapper)


def clock_synchronised() -> bool:
    from edge_metrics.clock import adjtimex

    return bool(adjtimex()[0])


def wait_for_readings(centre: Centre, settings: Settings) -> str:
    """The query the banner offers: edge_temperature once it is at the centre, else the collector's own info."""
    say("waiting for the first readings at the centre (scrapes every 15 s, as in production)")
    for query, timeout in (("edge_temperature", 90), ("edge_collector_info", 60)):
        try:
            wait_until(lambda query=query: centre.central.query(query), timeout=timeout, interval=0.2, what=query)
            return query
        except TimeoutError:
            say(f"timed out waiting for {query} at the centre (logs in {settings.run})")
    raise Failed(f"no readings at the centre (logs in {settings.run})")


def banner(centre: Centre, node: Node, alertmanager: Alertmanager, settings: Settings, query: str) -> str:
    prom_url, am_url, run, pki = centre.central.url, alertmanager.url, settings.run, centre.pki.dir
    encoded = urllib.parse.quote(query)
    if settings.secure:
        curl_auth = f"--cacert {pki}/ca.crt -u admin:$(cat {pki}/admin.password) "
        # The dashboards' renderer logs in as curl does: the demo's CA and the admin password it made.
        render_auth = f" --ca-file {pki}/ca.crt --password-file {pki}/admin.password"
        credentials = f"user admin, password in {pki}/admin.password, CA {pki}/ca.crt (docs/security.md)"
        amtool_auth = f"--http.config.file={pki}/amtool-http.yml"
    else:
        curl_auth = render_auth = amtool_auth = ""
        credentials = "none (EDGE_DEMO_INSECURE=1)"
    amtool = components()["AMTOOL_BIN"]
    selector = f'{query}{{node="{settings.node}"}}'
    render = f"--prometheus {prom_url}{render_auth} --node {settings.node} --out {run}/dashboards"
    return f"""
  Central Prometheus:  {prom_url}/user/
  A ready query:       {prom_url}/user/?query={encoded}
  Alerts:              {prom_url}/user/?view=alerts
  API:                 {prom_url}/api/v1/query?query={encoded}
  From a shell:        curl -s {curl_auth}'{prom_url}/api/v1/query' --data-urlencode 'query={selector}'
  Credentials:         {credentials}
  (The pages are the demo's own, tools/demo-ui: Debian's Prometheus package has no web UI.)
  Dashboards as PNG:   .venv/bin/python deploy/grafana/render.py {render}
  Logs and data:       {run}
  Alertmanager:        {am_url}   (Debian ships no web UI: {amtool} alert --alertmanager.url={am_url} {amtool_auth})
  Notifications:       {run}/webhook.log

  Press Ctrl-C to stop everything.
"""


def watch(procs: Processes, run: Path) -> None:
    """Stay in the foreground until Ctrl-C; a program that dies ends the demo."""
    while True:
        if any(proc.poll() is not None for proc in procs.started()):
            raise Failed(f"a program exited unexpectedly; see the logs in {run}")
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
