"""The catalogue's scripts (scripts/sensors/) under the real i2c-tools against the simulator's chip models: each
reading equals what the datasheet's formulas give for the model's raw inputs (computed here, independently of
the scripts), and each fault gives a failed run with one clear line on stderr and only the readings it got."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import EDGE_METRICS, REPO, Processes
from tests.sim.sensors import (
    DATASHEET_EXAMPLE,
    SENSORS,
    Bme280Calibration,
    Output,
    bme280_float,
    bme280_inputs,
    bme280_integer,
    ina219_expected,
    one_chip,
    read_output,
    run_script,
    sht3x_celsius,
    sht3x_crc,
    sht3x_ratio,
)
from tests.sim.support import run, simulator, write_model

pytestmark = pytest.mark.sim

# Help texts are shared by every script that exports the family (the collector refuses a second text).
HELP = {
    "temperature_celsius": "Temperature in degrees Celsius (°C).",
    "humidity_ratio": "Relative humidity as a ratio from 0 to 1 (%RH / 100).",
    "pressure_pascals": "Air pressure in pascals (Pa; 100 Pa = 1 hPa).",
}


class TestBme280:
    def test_the_datasheets_worked_example(self, procs: Processes, tmp_path: Path) -> None:
        """adc_T 519888 and adc_P 415148 with the example's calibration: 25.08 degC (t_fine 128422) and the
        example's 100653.27 Pa within the integer code's resolution (1/256 Pa), exactly what the integer code
        gives; humidity as the integer code gives it and within 0.1 %RH of the floating-point formula."""
        inputs = bme280_inputs(519888, 415148, 27100, DATASHEET_EXAMPLE)
        with one_chip(procs, tmp_path, "bme280", 0x76, inputs=inputs) as sim:
            out = run_script(sim, "bme280")
        assert out.code == 0, out.err
        t_fine, centi, q24_8, q22_10 = bme280_integer(519888, 415148, 27100, DATASHEET_EXAMPLE)
        assert (t_fine, centi) == (128422, 2508)
        assert out.readings["temperature_celsius"] == 25.08
        assert out.readings["pressure_pascals"] == pytest.approx(100653.27, abs=1 / 256 * 5)
        assert out.readings["pressure_pascals"] == pytest.approx(q24_8 / 256, abs=0.00005)
        assert out.readings["humidity_ratio"] == pytest.approx(q22_10 / 1024 / 100, abs=0.0000005)
        assert out.readings["humidity_ratio"] * 100 == pytest.approx(bme280_float(519888, 415148, 27100,
                                                                                  DATASHEET_EXAMPLE)[2], abs=0.1)
        assert out.devices == {"1-0076"}
        assert {key: out.helps[key] for key in HELP} == HELP and set(out.types.values()) == {"gauge"}

    @pytest.mark.parametrize(("adc_t", "adc_p", "adc_h"), [
        (400000, 300000, 20000),   # cold, high pressure, dry
        (600000, 500000, 40000),   # hot, low pressure, humid (clamped at 100 %RH)
        (519888, 415148, 0),       # humidity at its floor: 0
    ])
    def test_other_readings_and_another_chips_calibration(self, procs: Processes, tmp_path: Path,
                                                          adc_t: int, adc_p: int, adc_h: int) -> None:
        """Other raw values and calibration words with negative and 12-bit-signed humidity words (dig_H4, H5
        split across 0xE4..0xE6, dig_H6 signed): the integer code's results, within its resolution of the
        floating-point formulas."""
        cal = Bme280Calibration(T=(28485, 26735, 50), P=(37346, -10616, 3024, 7543, -127, -7, 9900, -10230, 4285),
                                H=(75, 371, 0, 290, -42, -5))
        with one_chip(procs, tmp_path, "bme280", 0x77, inputs=bme280_inputs(adc_t, adc_p, adc_h, cal)) as sim:
            out = run_script(sim, "bme280", BME280_I2C_ADDRESS="0x77")
        assert out.code == 0, out.err
        _, centi, q24_8, q22_10 = bme280_integer(adc_t, adc_p, adc_h, cal)
        celsius, pascals, percent = bme280_float(adc_t, adc_p, adc_h, cal)
        assert out.readings["temperature_celsius"] == centi / 100
        assert out.readings["temperature_celsius"] == pytest.approx(celsius, abs=0.01)
        assert out.readings["pressure_pascals"] == pytest.approx(q24_8 / 256, abs=0.00005)
        assert out.readings["pressure_pascals"] == pytest.approx(pascals, abs=1.0)
        assert out.readings["humidity_ratio"] == pytest.approx(q22_10 / 102400, abs=0.0000005)
        assert out.readings["humidity_ratio"] * 100 == pytest.approx(percent, abs=0.1)
        assert out.devices == {"1-0077"}

    @pytest.mark.parametrize(("options", "message"), [
        ({"fault": "wrong_id"}, "bme280: chip id at register 0xD0 of 1-0076 is 0x58, not 0x60: not a BME280 "
                                "(0x58 is a BMP280, 0x61 a BME680)"),
        ({"fault": "stuck_busy"}, "bme280: measurement on 1-0076 did not finish within 100 ms (status 0xF3 still "
                                  "measuring)"),
        ({"absent": True}, "bme280: no answer from 1-0076 reading 1 bytes at register 0xd0"),
        ({"nack": 1.0}, "bme280: no answer from 1-0076 reading 1 bytes at register 0xd0"),
    ])
    def test_faults_fail_the_run_with_a_clear_line(self, procs: Processes, tmp_path: Path,
                                                   options: dict[str, object], message: str) -> None:
        """A wrong chip id (a BMP280 where a BME280 should be), a measurement that never ends, a chip that does
        not answer: exit 1, no reading, and the line saying what happened."""
        with one_chip(procs, tmp_path, "bme280", 0x76, **options) as sim:
            out = run_script(sim, "bme280")
        assert out.code == 1
        assert out.readings == {}
        assert message in out.err.splitlines()

    def test_a_bad_environment_is_exit_2(self, procs: Processes, tmp_path: Path) -> None:
        with one_chip(procs, tmp_path, "bme280", 0x76) as sim:
            out = run_script(sim, "bme280", BME280_I2C_ADDRESS="0x99")
        assert out.code == 2 and "BME280_I2C_ADDRESS=0x99 is not a 7-bit address (0x03..0x77)" in out.err


class TestSht3x:
    def test_the_model_sends_the_datasheets_crc(self, procs: Processes, tmp_path: Path) -> None:
        """The datasheet's CRC example (0xBEEF -> 0x92) holds for the test's CRC, and the model's words carry
        that CRC: read with i2ctransfer, command then read, as a script must."""
        assert sht3x_crc(b"\xbe\xef") == 0x92
        with one_chip(procs, tmp_path, "sht3x", 0x44, inputs={"temperature": 0xBEEF, "humidity": 0x1234}) as sim:
            out = sim.sh("i2ctransfer -y 1 w2@0x44 0x24 0x00 && sleep 0.02 && i2ctransfer -y 1 r6@0x44")
        assert out.code == 0, out.err
        assert out.out.split() == ["0xbe", "0xef", "0x92", "0x12", "0x34", hex(sht3x_crc(b"\x12\x34"))]

    @pytest.mark.parametrize(("raw_t", "raw_rh"), [(26214, 32768), (0, 0), (0xFFFF, 0xFFFF), (0x6666, 0x8000)])
    def test_readings_follow_the_datasheet(self, procs: Processes, tmp_path: Path, raw_t: int, raw_rh: int) -> None:
        """T = -45 + 175 * S_T / (2^16 - 1), RH = S_RH / (2^16 - 1) as a ratio, at the ends of the range too."""
        with one_chip(procs, tmp_path, "sht3x", 0x45, inputs={"temperature": raw_t, "humidity": raw_rh}) as sim:
            out = run_script(sim, "sht3x", SHT3X_I2C_ADDRESS="0x45")
        assert out.code == 0, out.err
        assert out.readings["temperature_celsius"] == pytest.approx(sht3x_celsius(raw_t), abs=0.0005)
        assert out.readings["humidity_ratio"] == pytest.approx(sht3x_ratio(raw_rh), abs=0.000005)
        assert out.devices == {"1-0045"}
        assert {key: out.helps[key] for key in ("temperature_celsius", "humidity_ratio")} == \
            {key: HELP[key] for key in ("temperature_celsius", "humidity_ratio")}

    def test_a_bad_crc_is_a_failed_read_never_a_value(self, procs: Processes, tmp_path: Path) -> None:
        """One bit flipped in the temperature's CRC: no temperature, the humidity (its CRC good) still printed,
        exit 1, and the line naming both CRCs."""
        inputs = {"temperature": 26214, "humidity": 32768}
        with one_chip(procs, tmp_path, "sht3x", 0x44, fault="bad_crc", inputs=inputs) as sim:
            out = run_script(sim, "sht3x")
        good = sht3x_crc(bytes([0x66, 0x66]))
        assert out.code == 1
        assert out.readings == {"humidity_ratio": pytest.approx(0.50001, abs=0.000005)}
        assert (f"sht3x: CRC mismatch in the temperature from 1-0044: received {good ^ 1:#04x}, computed "
                f"{good:#04x} from 0x66 0x66") in out.err.splitlines()

    @pytest.mark.parametrize(("options", "message"), [
        ({"fault": "stuck_busy"}, "sht3x: no result from 1-0044 within 65 ms of the measure command (read not "
                                  "acknowledged)"),
        ({"absent": True}, "sht3x: no answer from 1-0044 to the measure command 0x2400"),
    ])
    def test_faults_fail_the_run_with_a_clear_line(self, procs: Processes, tmp_path: Path,
                                                   options: dict[str, object], message: str) -> None:
        with one_chip(procs, tmp_path, "sht3x", 0x44, **options) as sim:
            out = run_script(sim, "sht3x")
        assert out.code == 1 and out.readings == {}
        assert message in out.err.splitlines()


class TestIna219:
    @pytest.mark.parametrize(("shunt_uv", "bus_mv", "env"), [
        (25_000, 12_000, {}),                                           # 0.25 A at 12 V on the default 0.1 ohm
        (-12_345, 5_000, {}),                                           # current flowing back
        (0, 0, {}),
        (38_000, 3_300, {"INA219_SHUNT_OHMS": "0.01", "INA219_MAX_CURRENT_AMPERES": "4",
                         "INA219_SHUNT_RANGE_MILLIVOLTS": "40", "INA219_BUS_RANGE_VOLTS": "16"}),
        (400_000, 31_000, {}),                                          # beyond the PGA: the ADC saturates
    ])
    def test_readings_follow_the_datasheet(self, procs: Processes, tmp_path: Path, shunt_uv: int, bus_mv: int,
                                           env: dict[str, str]) -> None:
        """Calibration from the shunt and the largest current (equation 1), current and power as the chip
        computes them (equations 4 and 5, truncated), scaled back by the LSB the calibration gives."""
        with one_chip(procs, tmp_path, "ina219", 0x40,
                      inputs={"shunt_microvolts": shunt_uv, "bus_millivolts": bus_mv}) as sim:
            out = run_script(sim, "ina219", **env)
        options = {"ohms": float(env.get("INA219_SHUNT_OHMS", 0.1)),
                   "max_amperes": float(env.get("INA219_MAX_CURRENT_AMPERES", 3.2)),
                   "pga_mv": int(env.get("INA219_SHUNT_RANGE_MILLIVOLTS", 320)),
                   "bus_range": int(env.get("INA219_BUS_RANGE_VOLTS", 32))}
        expected = ina219_expected(shunt_uv, bus_mv, **options)  # type: ignore[arg-type]
        assert out.code == 0, out.err
        assert out.readings.keys() == expected.keys()
        for key, value in expected.items():
            assert value is not None
            assert out.readings[key] == pytest.approx(value, rel=1e-8, abs=1e-12), key
        assert out.readings["bus_voltage_volts"] == min(bus_mv, options["bus_range"] * 1000) / 1000

    def test_overflow_leaves_current_and_power_out(self, procs: Processes, tmp_path: Path) -> None:
        """A largest current set far below what flows: the chip flags OVF; the voltages print, current and power
        do not, exit 1 and the line saying what to change."""
        with one_chip(procs, tmp_path, "ina219", 0x40,
                      inputs={"shunt_microvolts": 300_000, "bus_millivolts": 12_000}) as sim:
            out = run_script(sim, "ina219", INA219_MAX_CURRENT_AMPERES="0.5")
        assert ina219_expected(300_000, 12_000, max_amperes=0.5)["current_amperes"] is None
        assert out.code == 1
        assert out.readings == {"bus_voltage_volts": 12.0, "shunt_voltage_volts": 0.3}
        assert ("ina219: math overflow (OVF) on 1-0040: current and power left out; raise "
                "INA219_MAX_CURRENT_AMPERES") in out.err.splitlines()

    @pytest.mark.parametrize(("options", "message"), [
        ({"fault": "stuck_busy"}, "ina219: no conversion from 1-0040 within 100 ms (CNVR of register 0x02 never set)"),
        ({"absent": True}, "ina219: no answer from 1-0040 writing 0x399f to register 0x00"),
    ])
    def test_faults_fail_the_run_with_a_clear_line(self, procs: Processes, tmp_path: Path,
                                                   options: dict[str, object], message: str) -> None:
        with one_chip(procs, tmp_path, "ina219", 0x40, **options) as sim:
            out = run_script(sim, "ina219")
        assert out.code == 1 and out.readings == {}
        assert message in out.err.splitlines()

    @pytest.mark.parametrize(("env", "message"), [
        ({"INA219_SHUNT_OHMS": "0"}, "gives calibration 0, outside 2..65534"),
        ({"INA219_SHUNT_OHMS": "abc"}, "INA219_SHUNT_OHMS=abc is not a resistance in ohms"),
        ({"INA219_BUS_RANGE_VOLTS": "24"}, "INA219_BUS_RANGE_VOLTS=24 is not 16 or 32"),
        ({"INA219_MAX_CURRENT_AMPERES": "0.001"}, "gives calibration 13421772, outside 2..65534"),
    ])
    def test_a_bad_environment_is_exit_2(self, procs: Processes, tmp_path: Path, env: dict[str, str],
                                         message: str) -> None:
        with one_chip(procs, tmp_path, "ina219", 0x40) as sim:
            out = run_script(sim, "ina219", **env)
        assert out.code == 2 and message in out.err


class TestUnderTheCollector:
    def test_one_node_with_the_catalogue(self, procs: Processes, tmp_path: Path) -> None:
        """Three chips on one bus, the three scripts on one node: `edge-metrics check` passes, and the exposition
        has one family per reading with the scripts' shared HELP, the two temperatures in one family."""
        model = write_model(tmp_path / "board.yaml", """
            buses:
              1:
                devices:
                  0x76: {chip: bme280}
                  0x44: {chip: sht3x}
                  0x40: {chip: ina219}
            """)
        conf = tmp_path / "nodes.conf"
        conf.write_text("board=bme280:10s,sht3x:10s,ina219:10s\n")
        check = subprocess.run([EDGE_METRICS, "check", "--config", conf, "--scripts-dir", SENSORS],
                               capture_output=True, text=True, timeout=60, check=False)
        assert check.returncode == 0, check.stderr
        with simulator(procs, model) as sim:
            out = sim.run(EDGE_METRICS, "run", "--once", "--output", "-", "--config", str(conf), "--scripts-dir",
                          str(SENSORS), "--node-name", "board")
        assert out.code == 0, out.err
        families = {f.name: f for f in text_string_to_metric_families(out.out)}
        temperature = families["edge_temperature_celsius"]
        assert temperature.documentation == HELP["temperature_celsius"] and temperature.type == "gauge"
        assert {s.labels["sensor"]: s.value for s in temperature.samples} == {"bme280": 25.08, "sht3x": 25.0}
        assert families["edge_current_amperes"].documentation == "Current through the shunt resistor in amperes (A)."
        assert not math.isnan(families["edge_pressure_pascals"].samples[0].value)
        assert "invalid line" not in out.err


def test_every_catalogue_script_is_in_the_configmap() -> None:
    """scripts/kustomization.yaml lists each scripts/sensors/*.sh, so the DaemonSet mounts the catalogue beside
    nodes.conf (flat: a ConfigMap key has no directory) and a nodes.conf line can name it."""
    listed = (REPO / "scripts" / "kustomization.yaml").read_text()
    for script in sorted(SENSORS.glob("*.sh")):
        assert f"- sensors/{script.name}\n" in listed, script.name
        assert not (REPO / "scripts" / script.name).exists(), f"{script.name} twice: one ConfigMap key"


def ads1115_code(microvolts: int, full_scale_volts: float) -> int:
    """SBAS444 9.3.3: the output code is the input over the full scale times 2^15, clamped to 16 bits signed."""
    return max(-32768, min(32767, int(microvolts * 32768 / round(full_scale_volts * 1_000_000))))


class TestAds1115:
    @pytest.mark.parametrize(("full_scale", "volts"), [
        ("4.096", (1_650_000, 3_300_000, 0, 500_000)),
        ("6.144", (6_144_000, 5_000_000, 1, 187)),        # full scale, and one LSB (187.5 uV)
        ("0.256", (300_000, -300_000, 255_992, -7_812)),  # saturated both ways, one LSB below full scale
        ("2.048", (-1_000_000, 2_047_937, 62, 63)),       # a negative input (single-ended: below GND)
    ])
    def test_each_input_with_its_gain(self, procs: Processes, tmp_path: Path, full_scale: str,
                                      volts: tuple[int, int, int, int]) -> None:
        """AIN0..AIN3 against GND, single shot each: the code the datasheet gives times full scale / 2^15; the
        channel label of ADS1115_CHANNELS, an input left out by `-`."""
        inputs = {f"ain{n}_microvolts": v for n, v in enumerate(volts)}
        with one_chip(procs, tmp_path, "ads1115", 0x49, inputs=inputs) as sim:
            out = run_script(sim, "ads1115", ADS1115_I2C_ADDRESS="0x49", ADS1115_FULL_SCALE_VOLTS=full_scale,
                             ADS1115_CHANNELS="battery,solar,-,probe", ADS1115_SAMPLES_PER_SECOND="860")
        assert out.code == 0, out.err
        fsr = float(full_scale)
        expected = {f"adc_input_volts[{name}]": ads1115_code(volts[n], fsr) * fsr / 32768
                    for n, name in ((0, "battery"), (1, "solar"), (3, "probe"))}
        assert out.readings == pytest.approx(expected, rel=1e-9, abs=1e-12)
        assert out.devices == {"1-0049"}

    def test_a_stuck_ready_bit_fails_each_input(self, procs: Processes, tmp_path: Path) -> None:
        """OS never reads 1 again: no reading, one line per input, exit 1."""
        with one_chip(procs, tmp_path, "ads1115", 0x48, fault="stuck_busy") as sim:
            out = run_script(sim, "ads1115", ADS1115_CHANNELS="a,-,-,-", ADS1115_SAMPLES_PER_SECOND="860")
        assert out.code == 1 and out.readings == {}
        assert ("ads1115: conversion of AIN0 on 1-0048 not ready after 0.0013 s and 10 polls (OS bit of register "
                "0x01 stays 0)") in out.err.splitlines()

    def test_a_missing_chip_and_a_bad_gain(self, procs: Processes, tmp_path: Path) -> None:
        with one_chip(procs, tmp_path, "ads1115", 0x48, absent=True) as sim:
            out = run_script(sim, "ads1115")
            assert out.code == 1 and "ads1115: no answer from 1-0048 writing 0xc383 to register 0x01" in out.err
            out = run_script(sim, "ads1115", ADS1115_FULL_SCALE_VOLTS="5")
            assert out.code == 2 and "ADS1115_FULL_SCALE_VOLTS=5 is not 6.144" in out.err


# SBOS397 tables 8 and 9: temperature -> the register's 12-bit and 13-bit (EM) codes.
TMP102_TABLE = [(128.0, None, 0x0800), (127.9375, 0x7FF, 0x07FF), (100.0, 0x640, 0x0640), (80.0, 0x500, 0x0500),
                (75.0, 0x4B0, 0x04B0), (50.0, 0x320, 0x0320), (25.0, 0x190, 0x0190), (0.25, 0x004, 0x0004),
                (0.0, 0x000, 0x0000), (-0.25, 0xFFC, 0x1FFC), (-25.0, 0xE70, 0x1E70), (-55.0, 0xC90, 0x1C90),
                (150.0, None, 0x0960)]


class TestTmp102:
    @pytest.mark.parametrize(("celsius", "code12", "code13"), TMP102_TABLE)
    def test_the_datasheets_table_in_both_formats(self, procs: Processes, tmp_path: Path, celsius: float,
                                                  code12: int | None, code13: int) -> None:
        """The model holds the table's codes (12-bit in bits 15..4; 13-bit in bits 15..3 with bit 0 set), and
        the script reads each back as the table's temperature; 128 and 150 degC only in extended mode."""
        inputs = {"temperature_millicelsius": round(celsius * 1000)}
        with one_chip(procs, tmp_path, "tmp102", 0x48, inputs=inputs) as sim:
            if code12 is not None:
                register = sim.sh("i2ctransfer -y 1 w1@0x48 0x00 r2")
                assert register.out.split() == [f"{code12 >> 4:#04x}", f"{code12 << 4 & 0xFF:#04x}"]
                out = run_script(sim, "tmp102")
                assert out.code == 0, out.err
                assert out.readings == {"temperature_celsius": celsius}
            out = run_script(sim, "tmp102", TMP102_EXTENDED="1")
            assert out.code == 0, out.err
            assert out.readings == {"temperature_celsius": celsius}
            register = sim.sh("i2ctransfer -y 1 w1@0x48 0x00 r2")
        word = code13 << 3 | 1
        assert register.out.split() == [f"{word >> 8:#04x}", f"{word & 0xFF:#04x}"]

    def test_a_format_that_never_switches(self, procs: Processes, tmp_path: Path) -> None:
        with one_chip(procs, tmp_path, "tmp102", 0x48, fault="stuck_busy") as sim:
            out = run_script(sim, "tmp102", TMP102_EXTENDED="1")
        assert out.code == 1 and out.readings == {}
        assert ("tmp102: the temperature register of 1-0048 is not in the 13-bit format 600 ms after EM was "
                "written") in out.err.splitlines()


def sysfs_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


BOARD = {
    # A BME280 bound to the kernel's bme280 IIO driver: processed values in the ABI's units.
    "bus/iio/devices/iio:device0/name": "bme280\n",
    "bus/iio/devices/iio:device0/in_temp_input": "25080\n",
    "bus/iio/devices/iio:device0/in_pressure_input": "100.653270\n",
    "bus/iio/devices/iio:device0/in_humidityrelative_input": "38831\n",
    # An ADC with raw codes: a shared scale, and a channel with its own scale and offset.
    "bus/iio/devices/iio:device1/name": "ads1015\n",
    "bus/iio/devices/iio:device1/in_voltage0_raw": "1234\n",
    "bus/iio/devices/iio:device1/in_voltage1_raw": "-20\n",
    "bus/iio/devices/iio:device1/in_voltage_scale": "0.125\n",
    "bus/iio/devices/iio:device1/in_voltage1_scale": "2\n",
    "bus/iio/devices/iio:device1/in_voltage1_offset": "100\n",
    "bus/iio/devices/iio:device1/in_accel_x_raw": "5\n",  # a type the script does not convert: left out
    "bus/iio/devices/iio:device2/name": "tmp117\n",
    "bus/iio/devices/iio:device2/in_temp_raw": "400\n",
    "bus/iio/devices/iio:device2/in_temp_offset": "-50\n",
    "bus/iio/devices/iio:device2/in_temp_scale": "100\n",
    "class/hwmon/hwmon0/name": "cpu_thermal\n",
    "class/hwmon/hwmon0/temp1_input": "-5500\n",
    "class/hwmon/hwmon1/name": "ina3221\n",
    "class/hwmon/hwmon1/in1_input": "5012\n",
    "class/hwmon/hwmon1/curr1_input": "250\n",
    "class/hwmon/hwmon1/power1_input": "1250000\n",
}


class TestIioHwmon:
    def run(self, procs: Processes, root: Path) -> Output:
        return read_output(run(procs, ["bash", str(SENSORS / "iio_hwmon.sh")], env={"EDGE_SYSFS_ROOT": str(root),
                                                                                    "PATH": "/usr/bin:/bin"}))

    def test_every_channel_in_base_units(self, procs: Processes, tmp_path: Path) -> None:
        """(raw + offset) x scale, or the driver's processed value, converted from the ABI's units: millidegrees,
        millivolts, kilopascals, milli percent, milliamperes, microwatts (hwmon)."""
        out = self.run(procs, sysfs_tree(tmp_path, BOARD))
        assert out.code == 0, out.err
        assert out.readings == pytest.approx({
            "temperature_celsius": -5.5,  # the last of the family in output order (hwmon0): all in `series` below
            "pressure_pascals": 100653.27, "humidity_ratio": 0.38831, "voltage_volts": 5.012,
            "current_amperes": 0.25, "power_watts": 1.25,
        })
        series = set(out.result.lines())
        assert {'temperature_celsius{sensor="bme280",device="iio:device0/temp"}=25.08',
                'voltage_volts{sensor="ads1015",device="iio:device1/voltage0"}=0.15425',
                'voltage_volts{sensor="ads1015",device="iio:device1/voltage1"}=0.16',
                'temperature_celsius{sensor="tmp117",device="iio:device2/temp"}=35',
                'temperature_celsius{sensor="cpu_thermal",device="hwmon0/temp1"}=-5.5'} <= series
        assert not any("accel" in line for line in series)

    def test_a_channel_that_cannot_be_read(self, procs: Processes, tmp_path: Path) -> None:
        """A channel whose file the driver cannot read (a vanished device) or holding no number: the others are
        printed, one line for each bad one, exit 1."""
        root = sysfs_tree(tmp_path, {**BOARD, "class/hwmon/hwmon1/curr1_input": "n/a\n"})
        (root / "bus/iio/devices/iio:device1/in_voltage2_raw").symlink_to(root / "gone")
        out = self.run(procs, root)
        assert out.code == 1
        assert "pressure_pascals" in out.readings and "power_watts" in out.readings
        assert "current_amperes" not in out.readings
        lines = out.err.splitlines()
        assert f"iio_hwmon: cannot read {root}/bus/iio/devices/iio:device1/in_voltage2_raw: No such file or " \
               "directory" in lines
        assert f"iio_hwmon: {root}/class/hwmon/hwmon1/curr1_input holds 'n/a', not a number" in lines

    def test_no_sensor_at_all(self, procs: Processes, tmp_path: Path) -> None:
        out = self.run(procs, tmp_path)
        assert out.code == 1 and out.readings == {}
        assert f"iio_hwmon: no IIO or hwmon sensor under {tmp_path} (bus/iio/devices, class/hwmon)" in out.err


def test_every_catalogue_script_passes_check(tmp_path: Path) -> None:
    """`edge-metrics check` on a nodes.conf naming all six (bash -n, first line, names), beside the scripts as in
    a checkout and in the ConfigMap of the rendered manifest, where they sit flat beside nodes.conf."""
    names = sorted(path.stem for path in SENSORS.glob("*.sh"))
    assert names == ["ads1115", "bme280", "iio_hwmon", "ina219", "sht3x", "tmp102"]
    line = "sensor-board=" + ",".join(f"{name}:30s" for name in names) + "\n"
    conf = tmp_path / "nodes.conf"
    conf.write_text(line)
    check = subprocess.run([EDGE_METRICS, "check", "--config", conf, "--scripts-dir", SENSORS, "--node-name",
                            "sensor-board"], capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stderr
    manifest = (REPO / "deploy" / "kubernetes" / "all-in-one.yaml").read_text()
    documents = list(yaml.safe_load_all(manifest))
    for document in documents:
        if isinstance(document, dict) and document.get("kind") == "ConfigMap" and "nodes.conf" in document["data"]:
            document["data"]["nodes.conf"] += line
    rendered = tmp_path / "all-in-one.yaml"
    rendered.write_text(yaml.safe_dump_all(documents))
    check = subprocess.run([EDGE_METRICS, "check", "--configmap", rendered, "--node-name", "sensor-board"],
                           capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stderr
    assert "sensor-board: ads1115 every 30s, bme280 every 30s" in check.stdout


@pytest.mark.parametrize("chip", ["bme280", "sht3x", "ina219", "ads1115", "tmp102"])
def test_a_hung_bus_ends_in_a_failure_within_the_budget(procs: Processes, tmp_path: Path, chip: str) -> None:
    """SDA held low: no i2c-tools command returns, the script's budget (80 % of EDGE_SCRIPT_TIMEOUT) ends it with
    exit 1 and a line naming the device, before the collector would have to kill it."""
    address = {"bme280": 0x76, "sht3x": 0x44, "ina219": 0x40, "ads1115": 0x48, "tmp102": 0x48}[chip]
    with one_chip(procs, tmp_path, chip, address) as sim:
        model = yaml.safe_load(sim.model.read_text())
        model["buses"][1]["hung"] = True
        sim.rewrite(yaml.safe_dump(model))
        out = run_script(sim, chip, EDGE_SCRIPT_TIMEOUT="1")
    assert out.code == 1 and out.readings == {}
    assert any(line.startswith(f"{chip}: no answer from 1-{address:04x}") for line in out.err.splitlines()), out.err
