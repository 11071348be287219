"""scripts/space_server.sh against simulated chips: every conversion matches the datasheet formula at
the edges, and every fault leaves out only what failed, alone and under the collector."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import EDGE_METRICS, REPO, Processes, parse_metrics
from tests.sim.support import SPACE_SERVER, SPACE_SERVER_MODEL, Result, processes_with_env, run, simulator

pytestmark = pytest.mark.sim

ADC = [f'adc_voltage_volts{{channel="{channel}"}}' for channel in range(4)]
KEYS = {"temperature", "humidity", "bus_voltage_volts", "shunt_voltage_volts", "current_amperes", "power_watts",
        *ADC}


def s16(raw: int) -> int:
    return raw - 0x10000 if raw & 0x8000 else raw


# The datasheet formulas, from the raw register contents, and half a unit of the digits the script prints.
FORMULAS: dict[str, tuple[str, Any, float]] = {
    "temperature": ("temp", lambda r: r / 65536 * 165 - 40, 0.005),  # HDC1080 datasheet 8.6.1
    "humidity": ("hum", lambda r: r / 65536 * 100, 0.005),  # HDC1080 8.6.2
    "bus_voltage_volts": ("bus", lambda r: (r >> 3) * 0.004, 0.0005),  # INA219 8.6.3.2
    "shunt_voltage_volts": ("shunt", lambda r: s16(r) * 10e-6, 0.000005),  # INA219 8.6.3.1
    "current_amperes": ("current", lambda r: s16(r) * 100e-6, 0.00005),  # Current_LSB 100 uA
    "power_watts": ("power", lambda r: r * 0.002, 0.0005),  # Power_LSB = 20 * Current_LSB
    **{key: (f"a{n}", lambda r: s16(r) * 4.096 / 32768, 0.0000005) for n, key in enumerate(ADC)},  # ADS1115 9.3.3
}


def chips(raw: dict[str, int], **overrides: dict[str, Any]) -> dict[str, Any]:
    """A model of the three chips holding `raw` (register contents, unsigned)."""
    ina_calibrated = lambda value: {"size": "word", "value": 0,  # noqa: E731
                                    "select": {"register": 5, "values": {0x1000: value}}}
    devices: dict[int, dict[str, Any]] = {
        0x40: {"registers": {0: {"size": "word", "value": raw["temp"]}, 1: {"size": "word", "value": raw["hum"]}}},
        0x41: {"registers": {
            1: {"size": "word", "value": raw["shunt"]},
            2: {"size": "word", "value": raw["bus"]},
            3: ina_calibrated(raw["power"]),
            4: ina_calibrated(raw["current"]),
            5: {"size": "word", "value": 0, "writable": True},
        }},
        0x48: {"registers": {
            0: {"size": "word", "value": 0, "select": {"register": 1, "mask": 0x7000, "values": {
                0x4000 + (n << 12): raw[f"a{n}"] for n in range(4)}}},
            1: {"size": "word", "value": 0x8583, "writable": True},
        }},
    }
    for address, extra in overrides.items():
        devices[int(address, 16)].update(extra)
    return {"buses": {0: {"devices": devices}}}


EDGES = {
    "lowest": dict(temp=0, hum=0, shunt=0x8000, bus=0x0002, current=0x8000, power=0,
                   a0=0x8000, a1=0xFFFF, a2=0, a3=1),
    "highest": dict(temp=0xFFFF, hum=0xFFFF, shunt=0x7FFF, bus=0xFFFA, current=0x7FFF, power=0xFFFF,
                    a0=0x7FFF, a1=0x7FFE, a2=0x4000, a3=0x0001),
    "around zero": dict(temp=15887, hum=1, shunt=0xFFFF, bus=0x000A, current=0xFFFF, power=1,
                        a0=0xFFFF, a1=0, a2=1, a3=0xFFFE),
    "typical": dict(temp=25222, hum=29491, shunt=5000, bus=24202, current=5000, power=3025,
                    a0=26400, a1=13200, a2=4000, a3=0),
    "negative celsius": dict(temp=10000, hum=32768, shunt=0xEC78, bus=0x5DC2, current=0xEC78, power=2500,
                             a0=0x9000, a1=0xC000, a2=0xF000, a3=0xFFF0),
}


def write(tmp_path: Path, model: dict[str, Any]) -> Path:
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(model))
    return path


def assert_conversions(result: Result, raw: dict[str, int], keys: set[str]) -> None:
    readings = result.readings()
    assert set(readings) == keys, result.err
    for key in keys:
        field, formula, tolerance = FORMULAS[key]
        expected = formula(raw[field])
        assert abs(readings[key] - expected) <= tolerance * 1.001, f"{key}: raw {raw[field]:#06x}"


class TestConversions:
    @pytest.mark.parametrize("case", EDGES)
    def test_datasheet_formulas(self, procs: Processes, tmp_path: Path, case: str) -> None:
        """Each key equals the datasheet formula of its raw register: full scale, zero, sign bits."""
        raw = EDGES[case]
        with simulator(procs, write(tmp_path, chips(raw))) as sim:
            result = sim.run("bash", SPACE_SERVER)
        assert result.code == 0, result.err
        assert result.err == ""
        assert_conversions(result, raw, KEYS)

    def test_edge_values_print_as_expected(self, procs: Processes, tmp_path: Path) -> None:
        """The extremes as a user reads them (C locale, fixed decimals)."""
        with simulator(procs, write(tmp_path, chips(EDGES["lowest"]))) as sim:
            lowest = sim.run("bash", SPACE_SERVER, LC_ALL="de_DE.UTF-8")
        assert lowest.lines() == [
            "temperature=-40.00", "humidity=0.00", "bus_voltage_volts=0.000", "shunt_voltage_volts=-0.32768",
            "current_amperes=-3.2768", "power_watts=0.000", 'adc_voltage_volts{channel="0"}=-4.096000',
            'adc_voltage_volts{channel="1"}=-0.000125', 'adc_voltage_volts{channel="2"}=0.000000',
            'adc_voltage_volts{channel="3"}=0.000125',
        ]

    def test_math_overflow_leaves_out_current_and_power(self, procs: Processes, tmp_path: Path) -> None:
        """INA219 OVF (bus voltage bit 0) marks current and power invalid: they are left out, exit 1."""
        raw = {**EDGES["typical"], "bus": 24202 | 1}
        with simulator(procs, write(tmp_path, chips(raw))) as sim:
            result = sim.run("bash", SPACE_SERVER)
        assert result.code == 1
        assert "OVF" in result.err
        assert_conversions(result, raw, KEYS - {"current_amperes", "power_watts"})

    def test_bundled_model(self, procs: Processes) -> None:
        """The shipped model gives the readings its comments promise."""
        with simulator(procs, SPACE_SERVER_MODEL) as sim:
            result = sim.run("bash", SPACE_SERVER)
        assert result.code == 0, result.err
        readings = result.readings()
        assert 22.4 <= readings["temperature"] <= 24.6 and 42.9 <= readings["humidity"] <= 47.1
        assert readings["bus_voltage_volts"] in (12.1, 12.104, 12.096)
        assert readings["current_amperes"] in (0.5, 0.51, 0.49)
        assert [readings[key] for key in ADC[:2]] == [3.3, 1.65] and readings[ADC[3]] == 0
        assert 0 <= readings[ADC[2]] <= 1.0


def typical(tmp_path: Path, **overrides: dict[str, Any]) -> Path:
    return write(tmp_path, chips(EDGES["typical"], **overrides))


class TestFaultsInTheScript:
    def test_absent_sensor_is_left_out(self, procs: Processes, tmp_path: Path) -> None:
        """No HDC1080: temperature and humidity are missing with i2cget's error; the rest print; exit 1."""
        with simulator(procs, typical(tmp_path, **{"0x40": {"absent": True}})) as sim:
            result = sim.run("bash", SPACE_SERVER)
        assert result.code == 1
        assert "Error: Read failed" in result.err
        assert "space_server: cannot read register 0x00 of device 0x40 on bus 0" in result.err
        assert_conversions(result, EDGES["typical"], KEYS - {"temperature", "humidity"})

    def test_nacks_never_produce_wrong_readings(self, procs: Processes, tmp_path: Path) -> None:
        """Devices that NACK half the time: whatever prints is right, and exit 1 exactly when something is missing."""
        nacky = {"nack": 0.5}
        with simulator(procs, typical(tmp_path, **{"0x40": nacky, "0x41": nacky, "0x48": nacky})) as sim:
            for _ in range(3):
                result = sim.run("bash", SPACE_SERVER)
                readings = result.readings()
                assert_conversions(result, EDGES["typical"], set(readings))
                assert result.code == (1 if set(readings) != KEYS else 0), result.err
                assert ("Error" in result.err) == (result.code == 1)

    def test_slow_bus_stays_within_the_time_budget(self, procs: Processes, tmp_path: Path) -> None:
        """500 ms per transfer with EDGE_SCRIPT_TIMEOUT=2: the script stops at its 80% budget, prints what it
        read, names what it skipped, and exits 1 before the collector would kill it."""
        model = write(tmp_path, {"buses": {0: {**chips(EDGES["typical"])["buses"][0], "delay": "500ms"}}})
        with simulator(procs, model) as sim:
            start = time.monotonic()
            result = sim.run("bash", SPACE_SERVER, EDGE_SCRIPT_TIMEOUT="2")
            elapsed = time.monotonic() - start
        assert result.code == 1
        assert elapsed < 2.0
        readings = result.readings()
        assert "temperature" in readings and not set(ADC) & set(readings)
        assert_conversions(result, EDGES["typical"], set(readings))
        assert "time budget of EDGE_SCRIPT_TIMEOUT=2s used up" in result.err

    def test_hung_bus_ends_cleanly_with_nothing_left(self, procs: Processes, tmp_path: Path) -> None:
        """A hung bus: each i2cget is stopped at the budget, the script fails on time, no process survives."""
        model = write(tmp_path, {"buses": {0: {**chips(EDGES["typical"])["buses"][0], "hung": True}}})
        with simulator(procs, model) as sim:
            start = time.monotonic()
            result = sim.run("bash", SPACE_SERVER, EDGE_SCRIPT_TIMEOUT="2")
            elapsed = time.monotonic() - start
            assert sim.processes_left() == []
        assert (result.code, result.out) == (1, "")
        assert 1.5 < elapsed < 2.0
        assert "time budget" in result.err

    def test_missing_bus(self, procs: Processes, tmp_path: Path) -> None:
        """Bus 0 absent from the machine: every reading is left out, with i2cget's open error."""
        with simulator(procs, write(tmp_path, {"buses": {1: {"devices": {}}}})) as sim:
            result = sim.run("bash", SPACE_SERVER)
        assert (result.code, result.out) == (1, "")
        assert "Error: Could not open file `/dev/i2c-0' or `/dev/i2c/0': No such file or directory" in result.err


def collect(procs: Processes, model: Path, *, config: Path = REPO / "scripts" / "nodes.conf",
            timeout: str = "10s") -> tuple[Result, dict[str, float], list[str]]:
    """`edge-metrics simulate -- edge-metrics run --once --output -` for bupt-a: the result, the samples
    (`name{labels}` -> value) and the processes its run left behind."""
    marker = uuid.uuid4().hex
    env = {**os.environ, "EDGE_TEST_MARKER": marker, "EDGE_SCRIPT_ENV": "EDGE_TEST_MARKER"}
    result = run(procs, [EDGE_METRICS, "simulate", "--model", model, "--", EDGE_METRICS, "run", "--once",
                         "--output", "-", "--config", config, "--node-name", "bupt-a", "--timeout", timeout],
                 env=env, timeout=30)
    return result, parse_metrics(result.out), processes_with_env(marker)


def script_metric(name: str, script: str = "space_server") -> str:
    return f'edge_collector_script_{name}{{script="{script}"}}'


class TestUnderTheCollector:
    def test_bundled_default(self, procs: Processes) -> None:
        """The seed's node on simulated hardware: every reading becomes an edge_ gauge; the run succeeds."""
        result, samples, left = collect(procs, SPACE_SERVER_MODEL)
        assert result.code == 0, result.err
        assert samples[script_metric("success")] == 1
        assert {"edge_temperature", "edge_humidity", "edge_bus_voltage_volts", "edge_power_watts",
                'edge_adc_voltage_volts{channel="0"}'} <= set(samples)
        assert samples['edge_adc_voltage_volts{channel="0"}'] == 3.3
        assert left == []

    def test_absent_sensor(self, procs: Processes, tmp_path: Path) -> None:
        """The collector exports the readings that worked and marks the run failed."""
        result, samples, _ = collect(procs, typical(tmp_path, **{"0x40": {"absent": True}}))
        assert result.code == 1
        assert samples[script_metric("success")] == 0 and samples[script_metric("exit_code")] == 1
        assert "edge_temperature" not in samples and samples["edge_bus_voltage_volts"] == 12.1
        assert "cannot read register 0x00 of device 0x40" in result.err  # logged from the script's stderr

    def test_nack_sometimes(self, procs: Processes, tmp_path: Path) -> None:
        """NACKs under the collector: exported readings are right; the run's success says whether all were read."""
        result, samples, _ = collect(procs, typical(tmp_path, **{"0x40": {"nack": 0.5}, "0x48": {"nack": 0.5}}))
        readings = {key.removeprefix("edge_"): value for key, value in samples.items()
                    if not key.startswith("edge_collector_")}
        for key, value in readings.items():
            field, formula, tolerance = FORMULAS[key]
            assert abs(value - formula(EDGES["typical"][field])) <= tolerance * 1.001
        assert samples[script_metric("success")] == (1 if set(readings) == KEYS else 0)
        assert result.code == (0 if set(readings) == KEYS else 1)

    def test_hung_bus_bundled_script(self, procs: Processes, tmp_path: Path) -> None:
        """Hung bus, bundled script: it gives up within its budget; a failed run, not a timeout; nothing left."""
        model = write(tmp_path, {"buses": {0: {**chips(EDGES["typical"])["buses"][0], "hung": True}}})
        result, samples, left = collect(procs, model, timeout="2s")
        assert result.code == 1
        assert samples[script_metric("success")] == 0 and samples[script_metric("timeouts_total")] == 0
        assert left == []

    def test_hung_bus_seed_script_is_killed_by_the_timeout(self, procs: Processes, tmp_path: Path) -> None:
        """The seed's plain `i2cget -f -y 0 0x40 0x01 w` on a hung bus: the collector's timeout kills the script
        and its i2cget; no process is left."""
        model = write(tmp_path, {"buses": {0: {**chips(EDGES["typical"])["buses"][0], "hung": True}}})
        scripts = tmp_path / "scripts"
        scripts.mkdir()
        (scripts / "nodes.conf").write_text("bupt-a=space_server:10s\n")
        (scripts / "space_server.sh").write_text(
            "#!/bin/bash\nraw=$(i2cget -f -y 0 0x40 0x01 w)\necho humidity=$(( ((raw & 0xff) << 8 | raw >> 8)"
            " * 100 / 65536 ))\n")
        start = time.monotonic()
        result, samples, left = collect(procs, model, config=scripts / "nodes.conf", timeout="1s")
        assert time.monotonic() - start < 8
        assert result.code == 1
        assert samples[script_metric("timeouts_total")] == 1 and samples[script_metric("success")] == 0
        assert "edge_humidity" not in samples
        assert left == []

    def test_slow_bus(self, procs: Processes, tmp_path: Path) -> None:
        """A slow bus under a 2s collector timeout: the script keeps to its budget, so the collector sees a failed
        run with the readings it managed, not a timeout."""
        model = write(tmp_path, {"buses": {0: {**chips(EDGES["typical"])["buses"][0], "delay": "500ms"}}})
        result, samples, left = collect(procs, model, timeout="2s")
        assert result.code == 1
        assert samples[script_metric("timeouts_total")] == 0 and samples[script_metric("exit_code")] == 1
        assert samples[script_metric("duration_seconds")] < 2
        assert samples["edge_temperature"] == 23.5
        assert "time budget" in result.err
        assert left == []
