"""What the catalogue's tests share: a model with one chip, the scripts' output read as a user sees it, and the
datasheets' formulas written out again here, from the datasheets, independently of the scripts."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import REPO, Processes
from tests.sim.support import Result, Simulator, simulator

SENSORS = REPO / "scripts" / "sensors"
SERIES = re.compile(r'([a-z_]+)\{sensor="([^"]+)",device="([^"]+)"(?:,channel="([^"]+)")?\}=(\S+)')


@dataclass(frozen=True)
class Output:
    result: Result
    readings: dict[str, float]  # key (with the channel label, if any) -> value
    helps: dict[str, str]
    types: dict[str, str]
    devices: set[str]

    @property
    def code(self) -> int:
        return self.result.code

    @property
    def err(self) -> str:
        return self.result.err


def read_output(result: Result) -> Output:
    """The script's lines: each must be a HELP, a TYPE or a reading with the catalogue's labels."""
    readings: dict[str, float] = {}
    helps: dict[str, str] = {}
    types: dict[str, str] = {}
    devices: set[str] = set()
    for line in result.lines():
        if line.startswith("# HELP "):
            key, _, text = line[7:].partition(" ")
            helps[key] = text
        elif line.startswith("# TYPE "):
            key, _, kind = line[7:].partition(" ")
            types[key] = kind
        else:
            match = SERIES.fullmatch(line)
            assert match is not None, f"not a reading with the catalogue's labels: {line!r}"
            key, _, device, channel, value = match.groups()
            readings[f"{key}[{channel}]" if channel else key] = float(value)
            devices.add(device)
    return Output(result, readings, helps, types, devices)


def chip_model(path: Path, chip: str, address: int, *, bus: int = 1, fault: str | None = None,
               inputs: Mapping[str, Any] | None = None, **device: Any) -> Path:
    entry: dict[str, Any] = {"name": chip, "chip": chip, **device}
    if fault:
        entry["fault"] = fault
    if inputs:
        entry["inputs"] = dict(inputs)
    path.write_text(yaml.safe_dump({"buses": {bus: {"devices": {address: entry}}}}))
    return path


@contextmanager
def one_chip(procs: Processes, tmp_path: Path, chip: str, address: int, **options: Any) -> Iterator[Simulator]:
    with simulator(procs, chip_model(tmp_path / f"{chip}.yaml", chip, address, **options)) as sim:
        yield sim


def run_script(sim: Simulator, name: str, **env: str) -> Output:
    return read_output(sim.run("bash", str(SENSORS / f"{name}.sh"), **env))


# -- BME280, BST-BME280-DS002 section 4.2.3 (integer) and 8.1 (floating point) ----------------------------------

def c_div(a: int, b: int) -> int:
    """C's integer division, which truncates toward zero (Python's // floors)."""
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b >= 0) else -quotient


@dataclass(frozen=True)
class Bme280Calibration:
    T: tuple[int, int, int]
    P: tuple[int, ...]
    H: tuple[int, int, int, int, int, int]


def bme280_integer(adc_t: int, adc_p: int, adc_h: int, cal: Bme280Calibration) -> tuple[int, int, int, int]:
    """(t_fine, T in 0.01 degC, p in Pa Q24.8, H in %RH Q22.10) by the datasheet's integer code."""
    t1, t2, t3 = cal.T
    var1 = (((adc_t >> 3) - (t1 << 1)) * t2) >> 11
    var2 = (((((adc_t >> 4) - t1) * ((adc_t >> 4) - t1)) >> 12) * t3) >> 14
    t_fine = var1 + var2
    temperature = (t_fine * 5 + 128) >> 8
    p1, p2, p3, p4, p5, p6, p7, p8, p9 = cal.P
    var1 = t_fine - 128000
    var2 = var1 * var1 * p6 + ((var1 * p5) << 17) + (p4 << 35)
    var1 = ((var1 * var1 * p3) >> 8) + ((var1 * p2) << 12)
    var1 = (((1 << 47) + var1) * p1) >> 33
    p = 1048576 - adc_p
    p = c_div(((p << 31) - var2) * 3125, var1)
    var1 = (p9 * (p >> 13) * (p >> 13)) >> 25
    var2 = (p8 * p) >> 19
    pressure = ((p + var1 + var2) >> 8) + (p7 << 4)
    h1, h2, h3, h4, h5, h6 = cal.H
    v = t_fine - 76800
    v = ((((adc_h << 14) - (h4 << 20) - (h5 * v)) + 16384) >> 15) * \
        (((((((v * h6) >> 10) * (((v * h3) >> 11) + 32768)) >> 10) + 2097152) * h2 + 8192) >> 14)
    v = v - (((((v >> 15) * (v >> 15)) >> 7) * h1) >> 4)
    v = min(max(v, 0), 419430400)
    return t_fine, temperature, pressure, v >> 12


def bme280_float(adc_t: int, adc_p: int, adc_h: int, cal: Bme280Calibration) -> tuple[float, float, float]:
    """(degC, Pa, %RH) by the datasheet's double-precision formulas: a second, independent reference."""
    t1, t2, t3 = cal.T
    var1 = (adc_t / 16384.0 - t1 / 1024.0) * t2
    var2 = ((adc_t / 131072.0 - t1 / 8192.0) ** 2) * t3
    t_fine = var1 + var2
    p1, p2, p3, p4, p5, p6, p7, p8, p9 = cal.P
    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * p6 / 32768.0 + var1 * p5 * 2.0
    var2 = var2 / 4.0 + p4 * 65536.0
    var1 = (p3 * var1 * var1 / 524288.0 + p2 * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * p1
    p = (1048576.0 - adc_p - var2 / 4096.0) * 6250.0 / var1
    pressure = p + (p9 * p * p / 2147483648.0 + p * p8 / 32768.0 + p7) / 16.0
    h1, h2, h3, h4, h5, h6 = cal.H
    h = t_fine - 76800.0
    h = (adc_h - (h4 * 64.0 + h5 / 16384.0 * h)) * \
        (h2 / 65536.0 * (1.0 + h6 / 67108864.0 * h * (1.0 + h3 / 67108864.0 * h)))
    h = h * (1.0 - h1 * h / 524288.0)
    return t_fine / 5120.0, pressure, min(max(h, 0.0), 100.0)


# The worked example of the datasheet (appendix 8.1; the BMP280 datasheet's 3.12 table has the same numbers):
# adc_T 519888, adc_P 415148 with these T and P words give t_fine 128422, 25.08 degC and 100653.27 Pa. The H
# words are a real chip's (the example has none).
DATASHEET_EXAMPLE = Bme280Calibration(
    T=(27504, 26435, -1000), P=(36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000),
    H=(75, 362, 0, 313, 50, 30),
)


def bme280_inputs(adc_t: int, adc_p: int, adc_h: int, cal: Bme280Calibration) -> dict[str, int]:
    names = {f"dig_T{n + 1}": v for n, v in enumerate(cal.T)} | {f"dig_P{n + 1}": v for n, v in enumerate(cal.P)}
    names |= {f"dig_H{n + 1}": v for n, v in enumerate(cal.H)}
    return {"temperature": adc_t, "pressure": adc_p, "humidity": adc_h, **names}


# -- SHT3x, SHT3x-DIS sections 4.12 (CRC) and 4.13 (conversion) ------------------------------------------------

def sht3x_crc(data: bytes) -> int:
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def sht3x_celsius(raw: int) -> float:
    return -45 + 175 * raw / 65535


def sht3x_ratio(raw: int) -> float:
    return raw / 65535


# -- INA219, SBOS448 section 8.5.1 (equations 1 to 5) ---------------------------------------------------------

def ina219_expected(shunt_uv: int, bus_mv: int, *, ohms: float = 0.1, max_amperes: float = 3.2,
                    pga_mv: int = 320, bus_range: int = 32) -> dict[str, float | None]:
    """What the registers hold for these inputs and what the readings must be; current and power None when the
    chip flags a math overflow."""
    cal = int(0.04096 / (max_amperes / 32768 * ohms)) & 0xFFFE
    limit = pga_mv * 100  # 10 uV steps
    steps = (abs(shunt_uv) + 5) // 10 * (1 if shunt_uv >= 0 else -1)  # the nearest 10 uV step, half away from 0
    shunt = max(-limit, min(limit, steps))
    bd = max(0, min(bus_mv, bus_range * 1000)) // 4
    current = int(shunt * cal / 4096)
    power = abs(current) * bd // 5000
    lsb = 0.04096 / (cal * ohms)
    overflow = not -32768 <= current <= 32767 or power > 0xFFFF
    return {"bus_voltage_volts": bd * 0.004, "shunt_voltage_volts": shunt * 1e-5,
            "current_amperes": None if overflow else current * lsb,
            "power_watts": None if overflow else power * 20 * lsb}
