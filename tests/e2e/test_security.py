"""Only the fleet writes to the centre, each node under its own name: the shipped secure path with the real
vmauth, vmagent and Prometheus (docs/security.md). One stack for the module: centre with vmauth and the
gate that sets the node label, edge node `edge-a` with the counter script; the tests read it in
order and each leaves it healthy for the next."""

from __future__ import annotations

import shutil
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from testbed.certs import Pki
from testbed.counter import read_prints
from testbed.exposition import metric_sum
from testbed.net import http_get
from testbed.node import Node
from testbed.paths import PROMETHEUS_DIR
from testbed.pipeline import Pipeline
from testbed.remote_write import post_lines
from tests.helpers import processes, wait_until

pytestmark = pytest.mark.e2e

NODE = "edge-a"
OTHER = "edge-b"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with processes() as procs:
        pipeline = Pipeline(
            procs, tmp_path_factory.mktemp("security"), node=NODE, enforce_node=True, other_nodes=[OTHER]
        )
        pipeline.start_infrastructure()
        pipeline.start_counter_collector(interval="1s")
        yield pipeline


def post(url: str, body: bytes, *, context: ssl.SSLContext | None, headers: dict[str, str] | None = None) -> int:
    """POST and return the HTTP status (errors included)."""
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def import_url(stack: Pipeline) -> str:
    """vmauth's import path: no route for a node's token (remote write only), so no way past the gate."""
    return f"{stack.ingest.url}/api/v1/import/prometheus"


def newest_counter(stack: Pipeline) -> int:
    return max(stack.counter_values_at_centre(), default=0)


def wait_for_marker(stack: Pipeline, name: str) -> None:
    """Write `name` with the node's own token and wait until the centre has it: everything sent before
    it through the same single queue has been delivered or refused by then."""
    status = post_lines(
        stack.ingest.write_url,
        f"{name} 1\n".encode(),
        context=stack.pki.context(),
        headers=bearer(stack.pki.token(NODE)),
    )
    assert status == 204
    wait_until(lambda: stack.central.query(name), timeout=60, interval=0.5, what=f"{name} at the centre")


def wait_arrived(stack: Pipeline, printed: set[int], *, what: str) -> None:
    """Every value in `printed` reaches the centre. An empty queue alone is not proof: the block vmagent is
    retrying is outside the queue until its next attempt, up to its back-off later."""
    assert len(printed) >= 3, f"{what}: too few values printed meanwhile to show a backlog"
    started = time.time()
    stack.wait_drained(timeout=180)
    missing = printed

    def arrived() -> bool:
        nonlocal missing
        missing = printed - stack.counter_values_at_centre()
        return not missing

    try:
        wait_until(arrived, timeout=120, interval=1, what="every value printed meanwhile at the centre")
    except TimeoutError:
        lost = sorted(missing)
        pytest.fail(f"{what}: {len(lost)} of {len(printed)} values printed meanwhile never arrived: {lost}")
    print(f"{what}: {len(printed)} values printed meanwhile, all at the centre {time.time() - started:.1f} s later")


def alert_expression(name: str) -> str:
    groups = yaml.safe_load((PROMETHEUS_DIR / "rules" / "edge-security.yml").read_text())["groups"]
    return next(rule["expr"] for group in groups for rule in group["rules"] if rule.get("alert") == name)


class TestSecurePath:
    def test_correct_credentials_data_flows_under_the_nodes_name(self, stack: Pipeline) -> None:
        """The node's readings arrive over TLS with its token, labelled with its name only."""
        wait_until(lambda: newest_counter(stack) >= 3, timeout=60, what="counter values at the centre")
        nodes = {series["metric"].get("node") for series in stack.central.query("edge_e2e_counter")}
        assert nodes == {NODE}

    def test_unauthenticated_write_is_refused_and_nothing_stored(self, stack: Pipeline) -> None:
        """No token, an unknown token, or the receiver itself without its password: 401, nothing stored."""
        body = b'e2e_anonymous{node="edge-a"} 99.9\n'
        context = stack.pki.context()
        assert post(import_url(stack), body, context=context) == 401
        assert post(stack.ingest.write_url, body, context=context) == 401
        assert post(import_url(stack), body, context=context, headers=bearer("0" * 64)) == 401
        assert post(f"{stack.central.url}/api/v1/write", body, context=context) == 401
        wait_for_marker(stack, "e2e_marker_after_anonymous")
        assert stack.central.query("e2e_anonymous") == []
        wait_until(
            lambda: metric_sum(stack.ingest.metrics(), "vmauth_http_request_errors_total", reason="invalid_auth_token"),
            timeout=30,
            interval=0.5,
            what="vmauth counting the unknown token",
        )

    def test_a_node_cannot_write_as_another(self, stack: Pipeline) -> None:
        """Node A's token writing node="edge-b" (in the data, twice, in the query string, or in the label
        the centre uses internally) stores everything as node="edge-a"."""
        body = (
            b'e2e_forged{node="edge-b",case="label"} 1\n'
            b'e2e_forged{node="edge-b",node="edge-c",case="twice"} 2\n'
            b'e2e_forged{authenticated_node="edge-b",node="edge-b",case="internal"} 3\n'
            b'e2e_forged{case="none"} 4\n'
        )
        assert post(import_url(stack), body, context=stack.pki.context(), headers=bearer(stack.pki.token(NODE))) >= 400
        status = post_lines(
            f"{stack.ingest.write_url}?extra_label=node={OTHER}",
            body,
            context=stack.pki.context(),
            headers=bearer(stack.pki.token(NODE)),
        )
        assert status == 204
        found = wait_until(
            lambda: len(result := stack.central.query("e2e_forged")) == 4 and result,
            timeout=60,
            interval=0.5,
            what="the four forged series at the centre",
        )
        assert {series["metric"]["node"] for series in found} == {NODE}
        # The old relabeling's internal label is an ordinary label of the node's to the gate.
        assert {series["metric"].get("authenticated_node") for series in found} == {None, "edge-b"}
        assert stack.central.query(f'{{node="{OTHER}"}}') == []

    def test_centre_answers_only_over_tls_with_credentials(self, stack: Pipeline) -> None:
        """Plain HTTP gets no data from either port, the API wants a user, and the lifecycle API is off."""
        for port in (stack.central.port, stack.ingest.port):
            with pytest.raises(urllib.error.HTTPError) as refused:
                http_get(f"http://127.0.0.1:{port}/api/v1/query?query=up")
            assert refused.value.code == 400  # "Client sent an HTTP request to an HTTPS server"
        with pytest.raises(urllib.error.HTTPError) as anonymous:
            http_get(f"{stack.central.url}/api/v1/query?query=up", context=stack.pki.context())
        assert anonymous.value.code == 401
        admin = stack.pki.basic_auth("admin")
        assert post(f"{stack.central.url}/-/quit", b"", context=stack.pki.context()) == 401
        assert post(f"{stack.central.url}/-/quit", b"", context=stack.pki.context(), headers=admin) == 403
        assert stack.central.get("/-/ready")  # still running

    def test_admin_endpoints_need_a_key(self, stack: Pipeline) -> None:
        """Edge vmagent: reload, flags and pprof refused without the node's admin key; vmauth serves its
        own admin endpoints only on the internal listener."""
        vmagent = f"http://{stack.node.vmagent_address}"
        for path in ("/-/reload", "/flags", "/debug/pprof/heap"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                http_get(vmagent + path)
            assert refused.value.code == 401, path
        key = (stack.node.credentials / "admin-key").read_text().strip()
        assert b"remoteWrite" in http_get(f"{vmagent}/flags?authKey={key}")
        for path in ("/metrics", "/-/reload", "/debug/pprof/heap"):
            with pytest.raises(urllib.error.HTTPError) as public:
                http_get(stack.ingest.url + path, context=stack.pki.context())
            assert public.value.code == 401, path

    def test_wrong_ca_is_refused(self, stack: Pipeline, tmp_path: Path) -> None:
        """A client that trusts another CA does not talk to the centre: vmagent with node B's token but
        a foreign CA delivers nothing, and a Python client fails verification."""
        foreign = Pki(tmp_path / "foreign")
        foreign.make(nodes=[OTHER], backend="http://127.0.0.1:1")
        with pytest.raises(urllib.error.URLError) as failed:
            http_get(f"{stack.ingest.url}/api/v1/write", context=foreign.context())
        assert isinstance(failed.value.reason, ssl.SSLCertVerificationError)

        credentials = tmp_path / "edge-b-credentials"
        shutil.copytree(stack.pki.node_dir(OTHER), credentials)
        shutil.copy(foreign.ca, credentials / "ca.crt")
        other = Node(
            stack.procs,
            tmp_path / OTHER,
            name=OTHER,
            remote_write_url=stack.ingest.write_url,
            scrape_interval="1s",
            credentials=credentials,
        )
        other.start_vmagent()
        log = tmp_path / OTHER / "vmagent.log"
        wait_until(
            lambda: "certificate signed by unknown authority" in log.read_text(),
            timeout=60,
            interval=0.5,
            what="vmagent refusing the centre's certificate",
        )
        wait_for_marker(stack, "e2e_marker_after_wrong_ca")
        assert stack.central.query(f'{{node="{OTHER}"}}') == []
        other.stop_vmagent()

    def test_revoked_token_is_refused_alerts_fire_and_the_backlog_arrives_when_renewed(self, stack: Pipeline) -> None:
        """The node's user removed from vmauth's config and reloaded: its vmagent gets 401 and queues,
        both alerts' expressions name the problem at the centre; restored, the queue drains and every
        value printed meanwhile arrives."""
        auth = stack.pki.auth_config
        original = auth.read_text()
        config = yaml.safe_load(original)
        config["users"] = [user for user in config["users"] if user["name"] != NODE]
        auth.write_text(yaml.safe_dump(config))
        stack.ingest.reload()
        revoked = time.time()

        def refused() -> bool:
            metrics = stack.node.vmagent_metrics()
            return metric_sum(metrics, "vmagent_remotewrite_requests_total", status_code="401") > 0

        wait_until(refused, timeout=60, interval=0.5, what="vmagent answered 401")
        for alert in ("EdgeRemoteWriteUnauthorized", "CentreRejectsInvalidTokens"):
            firing = wait_until(
                lambda alert=alert: stack.central.query(alert_expression(alert)),
                timeout=60,
                interval=0.5,
                what=f"{alert} expression true",
            )
            if alert == "EdgeRemoteWriteUnauthorized":
                assert {series["metric"]["node"] for series in firing} == {NODE}
        time.sleep(10)  # values printed while revoked: the backlog
        held_back = {p.value for p in read_prints(stack.scripts_dir) if p.at > revoked + 2}
        assert held_back & stack.counter_values_at_centre() == set()

        auth.write_text(original)
        stack.ingest.reload()
        restored = time.time()
        printed = {p.value for p in read_prints(stack.scripts_dir) if revoked + 2 < p.at < restored - 2}
        wait_arrived(stack, printed, what=f"revoked for {restored - revoked:.0f} s")

    def test_expired_centre_certificate_is_refused_and_the_backlog_arrives_when_renewed(self, stack: Pipeline) -> None:
        """vmauth serving an expired certificate: the node refuses to send (and queues); with a valid
        certificate again, every value printed meanwhile arrives."""
        stack.pki.make(nodes=[NODE, OTHER], backend=stack.ingest.backend, gate=True, expired=True)
        stack.ingest.stop_vmauth()
        stack.ingest.start(tls_name="central-expired")
        expired = time.time()
        with pytest.raises(urllib.error.URLError) as failed:
            http_get(f"{stack.ingest.url}/api/v1/write", context=stack.pki.context())
        assert "expired" in str(failed.value.reason)
        log = stack.node.workdir / "vmagent.log"
        wait_until(
            lambda: "certificate has expired" in log.read_text(),
            timeout=60,
            interval=0.5,
            what="vmagent refusing the expired certificate",
        )
        time.sleep(10)
        held_back = {p.value for p in read_prints(stack.scripts_dir) if p.at > expired + 2}
        assert held_back & stack.counter_values_at_centre() == set()

        stack.ingest.stop_vmauth()
        stack.ingest.start()
        renewed = time.time()
        printed = {p.value for p in read_prints(stack.scripts_dir) if expired + 2 < p.at < renewed - 2}
        wait_arrived(stack, printed, what=f"expired for {renewed - expired:.0f} s")

    def test_prometheus_outage_is_backfilled_from_the_nodes_queue(self, stack: Pipeline) -> None:
        """Prometheus down behind vmauth and the gate: the gate answers 503, the node's vmagent keeps what it
        took in its queue, and delivers all of it, still under the node's name, when Prometheus is back."""

        def central_pending() -> float:
            return stack.node.pending_bytes()

        stack.central.stop()
        stopped = time.time()
        wait_until(central_pending, timeout=60, interval=0.5, what="the node's vmagent queueing")
        time.sleep(10)
        stack.central.start()
        restarted = time.time()
        wait_until(lambda: central_pending() == 0, timeout=180, interval=0.5, what="the node's queue drained")
        drained = time.time()
        printed = {p.value for p in read_prints(stack.scripts_dir) if stopped + 2 < p.at < restarted - 2}
        wait_until(lambda: printed <= stack.counter_values_at_centre(), timeout=60, interval=0.5, what="every value")
        nodes = {series["metric"]["node"] for series in stack.central.query("edge_e2e_counter[5m]")}
        print(
            f"Prometheus down {restarted - stopped:.0f} s: {len(printed)} values printed meanwhile, "
            f"all delivered; the node's queue drained {drained - restarted:.1f} s after the restart"
        )
        assert len(printed) >= 3
        assert nodes == {NODE}
