"""A VictoriaMetrics centre says what it answered 204 for and dropped: the real VictoriaMetrics 1.145 with
deploy/victoria-metrics/victoria-metrics.flags (only the listen address and data path moved) stores its
own /metrics (-selfScrapeInterval), so EdgeCentreIgnoresRows' expression, as shipped in
deploy/prometheus/rules/alerting-alerts.yml and evaluated on the store itself (vmalert does the same),
turns true once a row beyond -futureRetention is written."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from testbed.flags import override_flags, read_flags
from testbed.net import http_get
from tests.helpers import REPO, RULES, Processes, components, free_port, rules_in, wait_until

pytestmark = pytest.mark.e2e

VICTORIA_FLAGS = REPO / "deploy" / "victoria-metrics" / "victoria-metrics.flags"
# The self-scrape runs every -selfScrapeInterval; the hang bound leaves room for a few of them.
BOUND = 120


def query(url: str, expr: str) -> list[dict[str, Any]]:
    body = json.loads(http_get(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})))
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def test_rows_beyond_future_retention_raise_edge_centre_ignores_rows(procs: Processes, tmp_path: Path) -> None:
    """One row stamped 3 days ahead (the shipped -futureRetention is 2d) is answered 204 and ignored;
    vm_rows_ignored_total counts it in the store's own series, and the alert's expression is true for the
    victoria-metrics job."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    flags = override_flags(
        read_flags(VICTORIA_FLAGS, {}),
        {"-httpListenAddr": f"127.0.0.1:{port}", "-storageDataPath": str(tmp_path / "data")},
    )
    procs.start([components()["VICTORIA_METRICS_BIN"], *flags], log=tmp_path / "victoria-metrics.log")
    wait_until(lambda: http_get(f"{url}/health") == b"OK", timeout=60, what="VictoriaMetrics ready")

    ahead_ms = int((time.time() + 3 * 86400) * 1000)
    request = urllib.request.Request(
        f"{url}/api/v1/import/prometheus?extra_label=node=bupt-a",
        data=f"e2e_future_reading 1 {ahead_ms}\n".encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204  # the sender sees success

    expr = next(r["expr"] for r in rules_in(RULES / "alerting-alerts.yml") if r.get("alert") == "EdgeCentreIgnoresRows")
    firing = wait_until(lambda: query(url, expr), timeout=BOUND, interval=1, what="EdgeCentreIgnoresRows' expression")
    assert {series["metric"]["job"] for series in firing} == {"victoria-metrics"}
    reasons = {s["metric"]["reason"] for s in query(url, 'vm_rows_ignored_total{job="victoria-metrics"} > 0')}
    assert reasons == {"big_timestamp"}
    print(f"1 row 3 d ahead: 204, ignored (big_timestamp), EdgeCentreIgnoresRows' expression = {firing[0]['value'][1]}")
