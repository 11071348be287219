"""A series bomb from one node's token through the gate into Prometheus 3.5, beside an honest node: prints what was
stored, what the gate refused, the honest node's worst delay, and the gate's and Prometheus' peak RSS
(docs/security.md, "The gate", measures it).

    .venv/bin/python -m bench.gate_bomb [--series 4000000] [--batch 10000] [--limit 20000]

Loopback only; the gate with deploy/vmauth/gate.flags' limits except the bomber's series limit (--limit), the store
Prometheus as the tests run it (plain HTTP here: the bench measures the gate, not TLS). vmauth is left out: it adds
nothing per series.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from edge_metrics.remotewrite import encode_write_request, snappy_encode
from testbed.flags import override_flags, read_flags
from testbed.paths import EDGE_METRICS, GATE_FLAGS
from tests.helpers import components, free_port, processes, wait_until


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Encoding": "snappy"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=4_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--limit", type=int, default=20_000, help="the bomber's series per hour")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, processes() as procs:
        work = Path(tmp)
        prom_port, gate_port = free_port(), free_port()
        (work / "prometheus.yml").write_text("global: {}\nstorage:\n  tsdb:\n    out_of_order_time_window: 1d\n")
        prometheus = procs.start([
            components()["PROMETHEUS_BIN"], f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{prom_port}",
            "--web.enable-remote-write-receiver"], log=work / "prometheus.log")
        store = f"http://127.0.0.1:{prom_port}"
        wait_until(lambda: urllib.request.urlopen(f"{store}/-/ready", timeout=5), timeout=60, what="Prometheus")
        limits = work / "limits.conf"
        limits.write_text(f"bomber series={args.limit} rate=100000000 bytes=67108864\n")
        flags = override_flags(read_flags(GATE_FLAGS, {}), {
            "--listen": f"127.0.0.1:{gate_port}", "--store-url": f"{store}/api/v1/write", "--limits": str(limits)})
        flags = [f for f in flags if not f.startswith(("--store-ca-file", "--store-username", "--store-password"))]
        gate = procs.start([str(EDGE_METRICS), "gate", *flags], log=work / "gate.log")
        base = f"http://127.0.0.1:{gate_port}"
        wait_until(lambda: urllib.request.urlopen(f"{base}/health", timeout=5), timeout=30, what="the gate")
        peaks = {"gate": 0.0, "prometheus": 0.0}
        delays: list[float] = []
        done = threading.Event()

        def honest() -> None:
            number = 0
            while not done.is_set():
                number += 1
                body = snappy_encode(encode_write_request([((("__name__", "honest_reading"),),
                                                            [(int(time.time() * 1000), float(number))])]))
                started = time.monotonic()
                assert post(f"{base}/node/honest/bench/api/v1/write", body) == 204
                delays.append(time.monotonic() - started)
                for name, proc in (("gate", gate), ("prometheus", prometheus)):
                    peaks[name] = max(peaks[name], rss_mib(proc.pid))
                time.sleep(1)

        thread = threading.Thread(target=honest)
        thread.start()
        started = time.monotonic()
        statuses: dict[int, int] = {}
        for offset in range(0, args.series, args.batch):
            stamp = int(time.time() * 1000)
            body = snappy_encode(encode_write_request(
                ((("__name__", "bomb"), ("id", str(i))), [(stamp, 1.0)]) for i in range(offset, offset + args.batch)))
            status = post(f"{base}/node/bomber/bench/api/v1/write", body)
            statuses[status] = statuses.get(status, 0) + 1
        elapsed = time.monotonic() - started
        done.set()
        thread.join()
        query = f"{store}/api/v1/query?" + urllib.parse.urlencode({"query": "count(count_over_time(bomb[1h]))"})
        stored = json.loads(urllib.request.urlopen(query, timeout=30).read())["data"]["result"]
        metrics = urllib.request.urlopen(f"{base}/metrics", timeout=30).read().decode()
        refused = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                      if line.startswith("edge_gate_samples_refused_total{") and 'node="bomber"' in line)
        print("| series sent | batches (status: count) | time | stored | refused by the gate | honest worst delay "
              "| gate peak RSS | Prometheus peak RSS |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        print(f"| {args.series:,} | {statuses} | {elapsed:.0f} s | {stored[0]['value'][1] if stored else 0} | "
              f"{refused:,.0f} | {max(delays):.2f} s | {peaks['gate']:.0f} MiB | {peaks['prometheus']:.0f} MiB |")


if __name__ == "__main__":
    main()
