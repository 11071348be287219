"""scripts/jetson_nano.sh against a fake sysfs tree: zones named by their type, millidegrees to degrees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import EDGE_METRICS, REPO, Processes
from tests.sim.support import JETSON_NANO, JETSON_SYSFS, Result, run

pytestmark = pytest.mark.sim


def jetson(procs: Processes, root: Path) -> Result:
    return run(procs, ["bash", JETSON_NANO], env={**os.environ, "EDGE_SYSFS_ROOT": str(root)})


def fake_sysfs(tmp_path: Path, zones: list[tuple[str, str]]) -> Path:
    """A sysfs root whose thermal zones have these (type, temp) file contents."""
    root = tmp_path / "sys"
    for number, (zone_type, temp) in enumerate(zones):
        zone = root / "class" / "thermal" / f"thermal_zone{number}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(zone_type + "\n")
        if temp:
            (zone / "temp").write_text(temp + "\n")
    return root


class TestJetsonNano:
    def test_fixture_zones(self, procs: Processes) -> None:
        """Every zone of the fixture, named by its type; gpu_temperature from thermal_zone1 as in the seed."""
        result = jetson(procs, JETSON_SYSFS)
        assert (result.code, result.err) == (0, "")
        assert result.lines() == [
            "ao_temperature=37.500", "gpu_temperature=41.000", "cpu_temperature=38.500", "pll_temperature=-5.500",
            "pmic_die_temperature=100.000", "thermal_fan_est_temperature=0.000",
        ]

    @pytest.mark.parametrize(
        ("temp", "printed"),
        [("0", "0.000"), ("-1", "-0.001"), ("-40000", "-40.000"), ("999", "0.999"), ("125000", "125.000"),
         ("-273150", "-273.150"), ("0041000", "41.000")],
    )
    def test_millidegrees(self, procs: Processes, tmp_path: Path, temp: str, printed: str) -> None:
        """Millidegrees to degrees exactly, negative values included."""
        result = jetson(procs, fake_sysfs(tmp_path, [("CPU-therm", temp)]))
        assert (result.code, result.out) == (0, f"cpu_temperature={printed}\n")

    def test_names_from_types(self, procs: Processes, tmp_path: Path) -> None:
        """Types become key names; a repeated type gets its zone number; an unusable type falls back to zoneN;
        zones sort numerically (thermal_zone10 after thermal_zone2)."""
        zones = [("cpu-thermal", "1000"), ("CPU-therm", "2000"), ("+++", "3000")] + [("x", "0")] * 7 + [
            ("Tdiode_tegra", "4000")]
        result = jetson(procs, fake_sysfs(tmp_path, zones))
        assert result.code == 0
        lines = result.lines()
        assert lines[:3] == ["cpu_temperature=1.000", "cpu_temperature_1=2.000", "zone2_temperature=3.000"]
        assert lines[-1] == "tdiode_tegra_temperature=4.000"

    def test_unreadable_zone_is_left_out(self, procs: Processes, tmp_path: Path) -> None:
        """A zone without a readable temperature is reported on stderr and skipped; the others print; exit 1."""
        result = jetson(procs, fake_sysfs(tmp_path, [("GPU-therm", "41000"), ("CPU-therm", ""),
                                                    ("PLL-therm", "garbage")]))
        assert (result.code, result.out) == (1, "gpu_temperature=41.000\n")
        assert "jetson_nano: thermal_zone1 (CPU-therm): cannot read temp" in result.err
        assert "thermal_zone2 (PLL-therm): cannot read temp (got 'garbage')" in result.err

    def test_no_zones(self, procs: Processes, tmp_path: Path) -> None:
        """No thermal zones at all is a failure, not an empty success."""
        result = jetson(procs, tmp_path)
        assert (result.code, result.out) == (1, "")
        assert "no thermal zones" in result.err

    def test_under_the_collector(self, procs: Processes) -> None:
        """The bundled config's edge-node-01 exports the zones as edge_*_temperature gauges."""
        env = {**os.environ, "EDGE_SYSFS_ROOT": str(JETSON_SYSFS), "EDGE_SCRIPT_ENV": "EDGE_SYSFS_ROOT"}
        config = REPO / "scripts" / "nodes.conf"
        result = run(procs, [EDGE_METRICS, "run", "--once", "--output", "-", "--config", config,
                             "--node-name", "edge-node-01"], env=env)
        assert result.code == 0, result.err
        assert "edge_gpu_temperature 41\n" in result.out
        assert "edge_pll_temperature -5.5\n" in result.out
