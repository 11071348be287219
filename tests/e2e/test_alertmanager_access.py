"""Alertmanager is closed: only its users silence, inject alerts, read the configuration or reload it.

The real Alertmanager 0.33 runs with the args of its Deployment (deploy/kubernetes/central/alertmanager.yaml)
and tools/make-certs.sh's credentials (alertmanager-web.yml: TLS and bcrypt basic auth). Each attack of
issue 18 is tried without credentials and with a wrong password, then the state is read back as the
operator: no silence was made or deleted, no fake alert reached the receiver, and the real alert of a
dead node kept arriving. amtool is used as docs/security.md shows it."""

from __future__ import annotations

import base64
import datetime
import json
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.alertmanager import Alertmanager
from testbed.certs import Pki
from testbed.webhook import WebhookReceiver, webhook_receiver
from tests.helpers import components, processes, wait_until

pytestmark = pytest.mark.e2e

FAST = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "2s"}
DEAD = {"alertname": "EdgeNodeSilent", "node": "bupt-a", "cluster": "test", "severity": "critical"}


@pytest.fixture(scope="module")
def webhook() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory, webhook: WebhookReceiver) -> Iterator[Alertmanager]:
    root = tmp_path_factory.mktemp("alertmanager-access")
    pki = Pki(root / "pki")
    pki.make(nodes=["bupt-a"])
    with processes() as procs:
        running = Alertmanager(procs, root / "alertmanager", webhook_url=webhook.url, timings=FAST, pki=pki)
        running.start()
        yield running


def silence(**matchers: str) -> dict[str, Any]:
    now = datetime.datetime.now(datetime.UTC)
    return {
        "matchers": [{"name": k, "value": v, "isRegex": v == ".+", "isEqual": True} for k, v in matchers.items()],
        "startsAt": now.isoformat(),
        "endsAt": (now + datetime.timedelta(hours=4)).isoformat(),
        "createdBy": "attacker",
        "comment": "issue 18",
    }


def fake_alert() -> dict[str, Any]:
    return {"labels": {"alertname": "EdgeFakeAlert", "node": "bupt-b", "severity": "critical"}}


def attacks(existing_silence: str) -> list[tuple[str, str, Any]]:
    """Issue 18's measured faults: (method, path, body)."""
    return [
        ("POST", "/api/v2/silences", silence(alertname="EdgeNodeSilent", node="bupt-a")),  # a dead node silenced
        ("POST", "/api/v2/silences", silence(alertname=".+")),  # silence everything
        ("DELETE", f"/api/v2/silence/{existing_silence}", None),  # delete the operator's silence
        ("POST", "/api/v2/alerts", [fake_alert()]),  # a fake alert for the receiver
        ("GET", "/api/v2/status", None),  # the whole configuration (receivers' URLs and keys)
        ("GET", "/api/v2/silences", None),
        ("POST", "/-/reload", None),
        ("GET", "/metrics", None),
    ]


def post_dead_node(manager: Alertmanager) -> None:
    """The central Prometheus' firing EdgeNodeSilent, sent as its own user."""
    status, body = manager.request("POST", "/api/v2/alerts", [{"labels": DEAD}], user="prometheus")
    assert status == 200, body


class TestAnonymous:
    def test_no_silence_alert_config_or_reload_without_a_user(
        self, manager: Alertmanager, webhook: WebhookReceiver
    ) -> None:
        """Without credentials, and with a wrong password: 401 for every attack; afterwards the operator
        finds their silence intact, no other silence, no fake alert, and the dead node still notified."""
        assert manager.secure, "Alertmanager's Deployment has no --web.config.file: its API is open"
        status, body = manager.request("POST", "/api/v2/silences", silence(alertname="EdgeMaintenance"))
        assert status == 200, body
        kept = json.loads(body)["silenceID"]
        post_dead_node(manager)
        wait_until(lambda: webhook.alerts("firing", alertname="EdgeNodeSilent"), timeout=30, what="the dead node")

        wrong_password = {"Authorization": "Basic " + base64.b64encode(b"operator:wrong").decode()}
        wrong = {
            (method, path): manager.request(method, path, body, auth=wrong_password)[0]
            for method, path, body in attacks(kept)
        }
        anonymous = {
            (method, path): manager.request(method, path, body, user=None)[0] for method, path, body in attacks(kept)
        }
        assert set(anonymous.values()) == {401}, anonymous
        assert set(wrong.values()) == {401}, wrong

        silences = json.loads(manager.get("/api/v2/silences"))
        assert [(s["id"], s["status"]["state"]) for s in silences] == [(kept, "active")]
        assert not any(a["labels"]["alertname"] == "EdgeFakeAlert" for a in manager.alerts())
        notified = len(webhook.alerts("firing", alertname="EdgeNodeSilent"))
        post_dead_node(manager)
        wait_until(
            lambda: len(webhook.alerts("firing", alertname="EdgeNodeSilent")) > notified,
            timeout=30,
            what="the dead node notified again (repeat_interval), not silenced",
        )
        assert webhook.alerts("firing", alertname="EdgeFakeAlert") == []

    def test_plain_http_and_a_foreign_ca_get_nothing(self, manager: Alertmanager, tmp_path: Path) -> None:
        """Plain HTTP is answered 400 by the TLS listener; a client trusting another CA fails verification."""
        with pytest.raises(urllib.error.HTTPError) as plain:
            urllib.request.urlopen(f"http://{manager.address}/api/v2/status", timeout=10)
        assert plain.value.code == 400
        foreign = Pki(tmp_path / "foreign")
        foreign.make(nodes=["x"])
        with pytest.raises(urllib.error.URLError) as failed:
            urllib.request.urlopen(f"{manager.url}/api/v2/status", timeout=10, context=foreign.context())
        assert isinstance(failed.value.reason, ssl.SSLCertVerificationError)


class TestOperator:
    def test_the_operator_silences_reads_and_reloads(self, manager: Alertmanager) -> None:
        """The operator user does everything the API offers: silence, delete it, read the config, reload."""
        status, body = manager.request("POST", "/api/v2/silences", silence(alertname="EdgeScriptFailing"))
        assert status == 200, body
        silence_id = json.loads(body)["silenceID"]
        assert manager.request("DELETE", f"/api/v2/silence/{silence_id}")[0] == 200
        status, body = manager.request("GET", "/api/v2/status")
        assert status == 200 and "edge-oncall" in json.loads(body)["config"]["original"]
        assert manager.request("POST", "/-/reload")[0] == 200
        assert b"alertmanager_build_info" in manager.get("/metrics")

    def test_amtool_works_with_the_http_config_make_certs_writes(self, manager: Alertmanager) -> None:
        """docs/security.md's amtool: `--http.config.file=amtool-http.yml` (the operator user, the CA)
        adds and lists a silence; without it amtool is refused."""
        amtool = components()["AMTOOL_BIN"]
        base = [amtool, f"--alertmanager.url={manager.url}", "--no-version-check"]
        config = f"--http.config.file={manager.pki.dir / 'amtool-http.yml'}"

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*base, *args], capture_output=True, text=True, timeout=60, check=False)

        added = run(config, "silence", "add", "alertname=EdgeAmtoolCheck", "--comment=docs", "--duration=1h")
        assert added.returncode == 0, added.stderr
        listed = run(config, "silence", "query", "-o", "json")
        assert listed.returncode == 0 and "EdgeAmtoolCheck" in listed.stdout, listed.stderr
        refused = run("silence", "query")
        assert refused.returncode != 0
