"""The chip models the simulator knows (sim/chips.c implements them): their inputs, in the order the C side
numbers them, with the range and default of each, and the faults each can show.

Inputs are what the chip measures, in the chip's own terms: raw ADC codes where the datasheet compensates them
with per-chip calibration words (BME280, SHT3x), and voltages or temperatures in integer micro- or milli-units
where the chip's own ADC quantises them (INA219, ADS1115, TMP102). docs/simulator.md lists them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Input:
    name: str
    low: int
    high: int
    default: int


@dataclass(frozen=True, slots=True)
class ChipType:
    name: str
    inputs: tuple[Input, ...]
    faults: tuple[str, ...]


S16 = (-0x8000, 0x7FFF)
U16 = (0, 0xFFFF)


def _calibration(names: str, kinds: str, defaults: tuple[int, ...]) -> tuple[Input, ...]:
    bounds = {"u8": (0, 0xFF), "s8": (-0x80, 0x7F), "u16": U16, "s16": S16, "s12": (-0x800, 0x7FF)}
    return tuple(Input(name, *bounds[kind], default)
                 for name, kind, default in zip(names.split(), kinds.split(), defaults, strict=True))


# BME280: the worked example of the datasheet's appendix 8.1 for temperature and pressure (adc_T 519888 with
# dig_T1..T3, adc_P 415148 with dig_P1..P9: 25.08 degC, 100653.27 Pa), and the humidity words of a real chip.
BME280 = ChipType("bme280", (
    Input("temperature", 0, 0xFFFFF, 519888),
    Input("pressure", 0, 0xFFFFF, 415148),
    Input("humidity", 0, 0xFFFF, 27100),
    *_calibration("dig_T1 dig_T2 dig_T3", "u16 s16 s16", (27504, 26435, -1000)),
    *_calibration("dig_P1 dig_P2 dig_P3 dig_P4 dig_P5 dig_P6 dig_P7 dig_P8 dig_P9",
                  "u16 s16 s16 s16 s16 s16 s16 s16 s16", (36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)),
    *_calibration("dig_H1 dig_H2 dig_H3 dig_H4 dig_H5 dig_H6", "u8 s16 u8 s12 s12 s8", (75, 362, 0, 313, 50, 30)),
), ("wrong_id", "stuck_busy"))

SHT3X = ChipType("sht3x", (
    Input("temperature", *U16, 26214),  # S_T: -45 + 175 * 26214 / 65535 = 25.0 degC
    Input("humidity", *U16, 32768),  # S_RH: 100 * 32768 / 65535 = 50.0 %RH
), ("bad_crc", "stuck_busy"))

INA219 = ChipType("ina219", (
    Input("shunt_microvolts", -400_000, 400_000, 25_000),
    Input("bus_millivolts", 0, 40_000, 12_000),
), ("stuck_busy",))

ADS1115 = ChipType("ads1115", tuple(
    Input(f"ain{n}_microvolts", -7_000_000, 7_000_000, default)
    for n, default in enumerate((1_650_000, 3_300_000, 0, 500_000))
), ("stuck_busy",))

TMP102 = ChipType("tmp102", (Input("temperature_millicelsius", -60_000, 160_000, 25_000),), ("stuck_busy",))

CHIPS = {chip.name: chip for chip in (BME280, SHT3X, INA219, ADS1115, TMP102)}
FAULTS = ("wrong_id", "stuck_busy", "bad_crc")
