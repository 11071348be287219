"""The systemd units of deploy/systemd, for a board without Kubernetes: `systemd-analyze verify` passes on them as
install.sh installs them, they are hardened as the docs say, their flags are the shipped ones, and their
command lines with their environment move readings to the centre (testbed/)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from testbed.centre import Centre
from testbed.flags import read_flags
from testbed.paths import EDGE_METRICS, VMAGENT_FLAGS
from tests.helpers import REPO, SIM_LIB, components, free_port, processes, wait_until
from tests.systemd.units import SYSTEMD_DIR, UNITS, Unit

INSTALL = SYSTEMD_DIR / "install.sh"
NODE = "bupt-a"  # the seed's node: space_server on simulated sensors
MODEL = REPO / "scripts" / "models" / "space_server.yaml"
STUBS = ("/opt/edge-metrics/bin/edge-metrics", "/usr/bin/vmagent", "/bin/kill")


def installed_root(tmp_path: Path) -> Path:
    """A root as install.sh leaves it (without packages and the virtualenv), with systemd's own units and
    stand-ins for the programs the units run (verify checks that they exist and are executable)."""
    root = tmp_path / "root"
    subprocess.run(["bash", str(INSTALL), "--root", str(root), "--skip-venv"], check=True, capture_output=True,
                   timeout=60)
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    for program in STUBS:
        stub = root / program.lstrip("/")
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
    return root


def systemd_analyze() -> tuple[str, dict[str, str]]:
    """The system's systemd-analyze, or the one `make systemd-analyze` unpacked from Debian's packages."""
    found = shutil.which("systemd-analyze")
    if found:
        return found, dict(os.environ)
    unpacked = REPO / ".cache" / "tools" / "systemd"
    assert (unpacked / "usr/bin/systemd-analyze").exists(), "systemd-analyze missing: run `make systemd-analyze`"
    libraries = f"{unpacked}/usr/lib/x86_64-linux-gnu/systemd:{unpacked}/usr/lib/systemd"
    return str(unpacked / "usr/bin/systemd-analyze"), {**os.environ, "LD_LIBRARY_PATH": libraries}


def verify(root: Path, *names: str) -> subprocess.CompletedProcess[str]:
    analyze, env = systemd_analyze()
    units = [str(root / "etc/systemd/system" / name) for name in names]
    return subprocess.run([analyze, "verify", "--man=no", f"--root={root}", *units], capture_output=True,
                          text=True, timeout=60, check=False, env=env)


class TestVerify:
    def test_systemd_analyze_verify_passes(self, tmp_path: Path) -> None:
        result = verify(installed_root(tmp_path), *UNITS)
        assert (result.returncode, result.stderr) == (0, "")

    def test_verify_names_a_misspelt_key(self, tmp_path: Path) -> None:
        """The control: a misspelt hardening key is only a warning to systemd, so the test above also wants an
        empty stderr."""
        root = installed_root(tmp_path)
        unit = root / "etc/systemd/system" / UNITS[0]
        unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSystm=strict"))
        assert "Unknown key 'ProtectSystm'" in verify(root, UNITS[0]).stderr


class TestHardening:
    @pytest.mark.parametrize("name", UNITS)
    def test_hardened_as_documented(self, name: str) -> None:
        unit = Unit.read(name)
        for key, value in {"DynamicUser": "yes", "ProtectSystem": "strict", "NoNewPrivileges": "yes",
                           "ProtectHome": "yes", "PrivateTmp": "yes", "CapabilityBoundingSet": ""}.items():
            assert unit.one(key) == value, key
        assert unit.service["StateDirectory"]

    def test_collector_reaches_i2c_only_through_its_group(self) -> None:
        unit = Unit.read(UNITS[0])
        assert unit.one("SupplementaryGroups") == "i2c"
        assert unit.one("DevicePolicy") == "closed" and unit.one("DeviceAllow") == "char-i2c rw"

    @pytest.mark.parametrize("name", UNITS)
    def test_state_is_under_the_state_directory(self, name: str) -> None:
        """Everything written lives below /var/lib/<StateDirectory>: the rest of the system is read-only."""
        unit = Unit.read(name)
        state = ["/var/lib/" + d for d in unit.one("StateDirectory").split()]
        env = unit.environment(SPECIFIERS)
        written = [env[k] for k in ("EDGE_OUTPUT", "EDGE_SPOOL_DIR") if k in env]
        written += [a.split("=", 1)[1] for a in unit.exec_start(specifiers=SPECIFIERS, env=env)
                    if a.startswith("-remoteWrite.tmpDataPath=")]
        assert written
        for path in written:
            assert any(path == d or path.startswith(d + "/") for d in state), path
        for path in (env.get("EDGE_OUTPUT"),):
            if path:
                assert str(Path(path).parent) in state, "the collector creates no directory: StateDirectory does"

    def test_vmagent_waits_for_missing_credentials(self) -> None:
        """A board whose credential files are not placed yet: each start fails (LoadCredential= of a missing file
        is fatal in systemd 252), so the unit must retry until they are, whatever the system's start limit, as
        the DaemonSet's pod runs on until the files arrive."""
        unit = Unit.read(UNITS[1])
        assert unit.service["LoadCredential"]
        assert unit.one("Restart") == "on-failure" and unit.one("RestartSec")
        assert unit.unit["StartLimitIntervalSec"] == ["0"], "systemd would stop retrying after StartLimitBurst"

    def test_vmagent_flags_are_the_shipped_ones(self) -> None:
        """deploy/vmagent/vmagent.flags with this host's paths: the queue in the state directory, the credentials
        as systemd credentials, the scrape config where install.sh puts it."""
        unit = Unit.read(UNITS[1])
        env = {"REMOTE_WRITE_URL": "$(REMOTE_WRITE_URL)", "NODE_NAME": "$(NODE_NAME)", "CLUSTER": "$(CLUSTER)"}
        args = unit.exec_start(specifiers={"d": "/etc/edge-metrics/credentials"}, env=env)[1:]
        shipped = read_flags(VMAGENT_FLAGS, env)
        moved = {"-promscrape.config": "/etc/edge-metrics/vmagent/scrape.yml",
                 "-remoteWrite.tmpDataPath": "/var/lib/edge-metrics-vmagent/remotewrite-data"}
        expected = [f"{a.split('=', 1)[0]}={moved[a.split('=', 1)[0]]}" if a.split("=", 1)[0] in moved else a
                    for a in shipped]
        assert args == expected


SPECIFIERS = {"H": NODE, "d": "/run/credentials/unit", "S": "/var/lib"}


class TestUnitsAgainstThePipeline:
    """Each unit's ExecStart with its Environment (as systemd expands them), run against the shipped centre: the
    board's paths moved below a temporary root, its loopback ports to free ones."""

    def test_readings_and_health_reach_the_centre(self, tmp_path: Path) -> None:
        for required in (EDGE_METRICS, SIM_LIB, MODEL):
            assert required.exists(), f"{required} missing: run `make test`"
        root = tmp_path / "board"
        subprocess.run(["bash", str(INSTALL), "--root", str(root), "--skip-venv"], check=True, capture_output=True,
                       timeout=60)
        vmagent_port, listen_port = free_port(), free_port()
        with processes() as procs:
            centre = Centre(procs, tmp_path / "centre", nodes=[NODE])
            centre.start()
            state = root / "var/lib"

            def moved(text: str) -> str:
                for old, new in (("/etc/", f"{root}/etc/"), ("/var/lib/", f"{state}/"),
                                 ("127.0.0.1:8429", f"127.0.0.1:{vmagent_port}"),
                                 ("127.0.0.1:9101", f"127.0.0.1:{listen_port}")):
                    text = text.replace(old, new)
                return text

            scrape = root / "etc/edge-metrics/vmagent/scrape.yml"
            scrape.write_text(moved(scrape.read_text()))
            specifiers = {**SPECIFIERS, "d": str(centre.pki.node_dir(NODE))}  # LoadCredential's directory

            vmagent_unit = Unit.read(UNITS[1])
            # What /etc/default/edge-metrics sets (EnvironmentFile=, which wins over Environment=).
            site = {"REMOTE_WRITE_URL": centre.ingest.write_url, "CLUSTER": "test"}
            env = {**vmagent_unit.environment(specifiers), **site}
            argv = [moved(a) for a in vmagent_unit.exec_start(specifiers=specifiers, env=env)]
            assert argv[0] == "/usr/bin/vmagent"
            # StateDirectory= creates these before ExecStart.
            for directory in Unit.read(UNITS[1]).one("StateDirectory").split():
                (state / directory).mkdir(parents=True, exist_ok=True)
            procs.start([components()["VMAGENT_BIN"], *argv[1:]], log=tmp_path / "vmagent.log")

            collector_unit = Unit.read(UNITS[0])
            for directory in collector_unit.one("StateDirectory").split():
                (state / directory).mkdir(parents=True, exist_ok=True)
            parts = components()
            env = {key: moved(value) for key, value in collector_unit.environment(specifiers).items()}
            env.update({"PATH": f"{parts['I2C_TOOLS_DIR']}:{os.environ['PATH']}",
                        "LD_LIBRARY_PATH": parts["I2C_LIBRARY_PATH"], "EDGE_CLOCK_CHECK": "none"})
            argv = collector_unit.exec_start(specifiers=specifiers, env=env)
            assert argv[0] == "/opt/edge-metrics/bin/edge-metrics"
            procs.start([str(EDGE_METRICS), "simulate", "--model", str(MODEL), "--", str(EDGE_METRICS), *argv[1:]],
                        env=env, log=tmp_path / "collector.log")

            reading = wait_until(lambda: centre.central.query(
                f'{{__name__=~"edge_.+", __name__!~"edge_collector_.+", node="{NODE}"}}'), timeout=90, interval=1,
                what=f"a pushed reading at the centre (logs in {tmp_path})")
            assert reading
            up = wait_until(lambda: centre.central.query(f'up{{job="node-exporter", node="{NODE}"}} == 1'),
                            timeout=90, interval=1, what="the collector's endpoint scraped by the unit's vmagent")
            assert up[0]["metric"]["cluster"] == "test"
            assert centre.central.query(f'edge_collector_info{{node="{NODE}"}}')
            assert yaml.safe_load(scrape.read_text())["scrape_configs"][0]["job_name"] == "node-exporter"
