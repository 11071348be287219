"""`make demo` shows simulated readings at the central Prometheus and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import base64
import hashlib
import html.parser
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from typing import NamedTuple

import pytest

from testbed.certs import Pki
from testbed.prometheus import PrometheusAPI
from tests.helpers import REPO, RULE_FILES, RULES, SIM_LIB, Processes, rules_in, run_in_own_group, wait_until

pytestmark = pytest.mark.e2e


def processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def process_state(pid: int) -> str:
    """A process's state and its children's command lines: what a demo that ignores Ctrl-C is doing."""
    proc = Path(f"/proc/{pid}")
    try:
        state = next(line for line in (proc / "status").read_text().splitlines() if line.startswith("State:"))
        children = (proc / "task" / str(pid) / "children").read_text().split()
    except OSError as error:
        return f"pid {pid}: {error}"
    commands = [Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode() for child in children]
    return f"pid {pid} {state}, wchan {(proc / 'wchan').read_text()}, children {commands}"


# `  Label:   http://...` lines of the banner: every link the demo prints.
BANNER_LINK = re.compile(r"^\s+([A-Za-z][A-Za-z ()]*):\s+(https?://127\.0\.0\.1:\d+\S*)\s*$", re.M)
CHROMIUM = os.environ.get("CHROMIUM", "chromium")


class Login(NamedTuple):
    """How a person reaches the secure demo centre: its CA (or the key the browser was told to trust) and
    the admin user make-certs wrote (docs/security.md)."""

    pki: Pki

    def open(self, url: str) -> int:
        """HTTP status of `url` fetched as that person, trusting only the demo's CA."""
        request = urllib.request.Request(url)
        if url.startswith("https://"):
            for name, value in self.pki.basic_auth("admin").items():
                request.add_header(name, value)
        with urllib.request.urlopen(request, timeout=30, context=self.pki.context()) as response:
            return int(response.status)

    def browser_args(self, url: str) -> tuple[list[str], str]:
        """Chromium's options and the URL with the user in it, as a person would type them after
        accepting the centre's certificate: only that key is trusted, nothing else is ignored."""
        if not url.startswith("https://"):
            return [], url
        der = ssl.PEM_cert_to_DER_cert((self.pki.dir / "central.crt").read_text())
        spki = subprocess.run(["openssl", "x509", "-inform", "DER", "-pubkey", "-noout"], input=der,
                              capture_output=True, check=True).stdout
        key = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=spki, capture_output=True,
                             check=True).stdout
        pin = base64.b64encode(hashlib.sha256(key).digest()).decode()
        user = f"admin:{self.pki.password('admin')}@"
        return [f"--ignore-certificate-errors-spki-list={pin}"], url.replace("https://", f"https://{user}", 1)


def browser_dom(url: str, profile: Path, login: Login) -> str:
    """The page as a person's browser shows it: Debian's Chromium, headless, after the page's scripts ran
    (virtual time waits for their fetches)."""
    assert shutil.which(CHROMIUM), "chromium missing: `make browser` (make test does) installs Debian's package"
    extra, url = login.browser_args(url)
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", *extra,
            f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom", url]
    result = run_in_own_group(argv, timeout=120)  # its helper processes share the group: all killed
    assert result.returncode == 0, f"chromium exited {result.returncode} on {url}"
    return result.stdout.decode(errors="replace")


class _Text(html.parser.HTMLParser):
    """The visible text of a DOM, and the cells of its table rows."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.rows: list[list[str]] = []
        self.skip = 0
        self.in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self.skip += 1
        elif tag == "tr":
            self.rows.append([])
        elif tag == "td" and self.rows:
            self.rows[-1].append("")
            self.in_cell = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skip -= 1
        elif tag == "td":
            self.in_cell = False

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        self.parts.append(data)
        if self.in_cell:
            self.rows[-1][-1] += data

    @classmethod
    def of(cls, dom: str) -> _Text:
        parser = cls()
        parser.feed(dom)
        return parser

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.parts).split())


def alert_rule_names() -> list[str]:
    return [rule["alert"] for name in RULE_FILES for rule in rules_in(RULES / name) if "alert" in rule]


def what_a_person_sees(label: str, url: str, profile: Path, login: Login) -> str | None:
    """Why the page at `url` does not show what its banner line promises, or None when it does."""
    try:
        status = login.open(url)
    except OSError as error:
        return f"{label} {url}: {error}"
    if status != 200:
        return f"{label} {url}: HTTP {status}"
    dom = browser_dom(url, profile, login)
    page = _Text.of(dom)
    if "/api/" in url:
        try:
            body = json.loads(page.text)
        except ValueError:
            return f"{label} {url}: not JSON: {page.text[:300]}"
        ok = body.get("status") == "success" and body["data"]["result"]
        return None if ok else f"{label} {url}: no result: {page.text[:300]}"
    if url.endswith("view=alerts"):
        rules = [row for row in page.rows if len(row) == 3]
        shown = {row[0] for row in rules if row[1] in ("inactive", "pending", "firing")}
        expected = alert_rule_names()
        assert expected, "no alert rules in deploy/prometheus/rules"
        missing = [name for name in expected if name not in shown]
        return f"{label} {url}: rules not shown: {missing}; page: {page.text[:500]}" if missing else None
    if "/user/" in url:
        values = {row[0]: row[1] for row in page.rows if len(row) == 2}
        readings = [float(v) for name, v in values.items() if name.startswith("edge_temperature{")
                    and 'node="bupt-a"' in name and re.fullmatch(r"-?[0-9.]+", v)]
        if not (readings and all(0 < v < 100 for v in readings)):
            return f"{label} {url}: no edge_temperature reading of bupt-a shown: {page.text[:500]}"
        if dom.count("<polyline") < 1:
            return f"{label} {url}: no line drawn in the graph"
        return None
    # A link another part of the demo added (Alertmanager...): at least a page with text and no error.
    if not page.text or re.search(r"404 page not found|error reading|no such file", page.text, re.I):
        return f"{label} {url}: {page.text[:300] or 'an empty page'}"
    return None


class TestDemo:
    def test_readings_at_the_centre_and_ctrl_c_stops_everything(self, procs: Processes, tmp_path: Path) -> None:
        """The demo prints the centre's URL once simulated readings of the bundled default node have
        arrived there; SIGINT (Ctrl-C) ends it with status 0 and no process of it is left."""
        assert SIM_LIB.exists(), "run `make sim` first (make test does)"
        run_dir = tmp_path / "demo"
        log = tmp_path / "demo.log"
        demo = procs.start(
            [str(REPO / ".venv" / "bin" / "python"), "-m", "testbed.demo"],  # what `make demo` runs
            env={**os.environ, "EDGE_DEMO_DIR": str(run_dir)},
            cwd=REPO,
            log=log,
        )
        wait_until(lambda: "Press Ctrl-C" in log.read_text(), timeout=180, interval=0.5, what="the demo's banner")
        banner = log.read_text()
        # Secure by default (docs/security.md): TLS, and the admin password make-certs wrote.
        url = re.search(r"Central Prometheus:\s+(https://127\.0\.0\.1:\d+)", banner)
        assert url, banner
        assert "edge_temperature" in banner
        # Pushed (push mode is the demo's default): no job label, the reading's own time. Secure by default
        # (docs/security.md): TLS, and the admin password make-certs wrote.
        assert f"password in {run_dir}/pki/admin.password" in banner
        readings = PrometheusAPI(url.group(1), Pki(run_dir / "pki")).query('edge_temperature{node="bupt-a",job=""}')
        assert readings and 0 < float(readings[0]["value"][1]) < 100
        assert len(processes_mentioning(str(run_dir))) >= 6  # with vmauth and the central vmagent

        # The printed render command, run as printed from the checkout, draws the dashboards (it failed with an
        # SSL traceback: the secure centre needs the demo's CA and password).
        render = re.search(r"Dashboards as PNG:\s+(.+)$", banner, re.M)
        assert render, banner
        drawn = subprocess.run(["bash", "-c", render.group(1)], cwd=REPO, capture_output=True, text=True,
                               timeout=300, check=False)
        assert drawn.returncode == 0, drawn.stderr[-3000:]
        assert list((run_dir / "dashboards").glob("*.png")), drawn.stdout

        # Every link it prints works in a browser and shows what its line says.
        links = BANNER_LINK.findall(banner)
        assert {"Central Prometheus", "A ready query", "Alerts"} <= {label for label, _ in links}, banner
        login = Login(Pki(run_dir / "pki"))
        with tempfile.TemporaryDirectory(prefix="edge-demo-browser-") as profile:
            problems = [problem for label, link in links
                        if (problem := what_a_person_sees(label, link, Path(profile), login)) is not None]
        assert problems == [], "\n".join(problems)

        os.kill(demo.pid, signal.SIGINT)
        try:
            code = demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"demo still running 30 s after Ctrl-C ({process_state(demo.pid)}):\n{log.read_text()[-2000:]}")
        assert code == 0, log.read_text()[-2000:]
        assert processes_mentioning(str(run_dir)) == []
        assert "nothing left running" in log.read_text()
