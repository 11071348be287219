"""Compile a validated model into the flat text the preloaded C library reads (sim/model.c).

One record per line, space-separated, numbers in decimal, so C parses it with strtoll and no YAML:

    edge-i2c-sim 1
    source MTIME_NS SIZE PATH                      the YAML and its stamp when compiled
    bus BUS HUNG DELAY_US
    dev BUS ADDR ABSENT NACK_PPM DELAY_US WRITABLE
    reg BUS ADDR REG byte|word|block big|little WRITABLE SPEC
    case BUS ADDR REG SELECT_REG MASK KEY SPEC    (after its reg; the first match wins)
    chip BUS ADDR NAME FAULT|none                 a chip model (sim/chips.c) in place of registers
    input BUS ADDR INDEX SPEC                     its inputs, numbered as in simulate/chips.py

    SPEC: const V | seq STEP_MS N V... | ramp PERIOD_MS FROM TO | sine PERIOD_MS CENTER AMPLITUDE
          | bytes N B...
"""

from __future__ import annotations

from edge_metrics.simulate.model import Bytes, Const, Model, Ramp, Sequence, Sine, Value

FORMAT_VERSION = 1


def compile_model(model: Model, stamp: tuple[int, int]) -> str:
    mtime_ns, size = stamp
    lines = [f"edge-i2c-sim {FORMAT_VERSION}", f"source {mtime_ns} {size} {model.source}"]
    for bus in model.buses:
        lines.append(f"bus {bus.number} {int(bus.hung)} {bus.delay_us}")
        for dev in bus.devices:
            where = f"{bus.number} {dev.address}"
            lines.append(f"dev {where} {int(dev.absent)} {round(dev.nack * 1_000_000)} {dev.delay_us} "
                         f"{int(dev.writable)}")
            if dev.chip is not None:
                lines.append(f"chip {where} {dev.chip.type} {dev.chip.fault or 'none'}")
                lines.extend(f"input {where} {index} {_spec(value)}" for index, value in enumerate(dev.chip.inputs))
            for reg in dev.registers:
                order = "big" if reg.big_endian else "little"
                lines.append(f"reg {where} {reg.number} {reg.size} {order} {int(reg.writable)} {_spec(reg.value)}")
                for case in reg.cases:
                    lines.append(f"case {where} {reg.number} {case.select} {case.mask} {case.key} "
                                 f"{_spec(case.value)}")
    return "\n".join(lines) + "\n"


def _spec(value: Value) -> str:
    match value:
        case Const(number):
            return f"const {number}"
        case Sequence(values, step_ms):
            return f"seq {step_ms} {len(values)} " + " ".join(map(str, values))
        case Ramp(start, end, period_ms):
            return f"ramp {period_ms} {start} {end}"
        case Sine(center, amplitude, period_ms):
            return f"sine {period_ms} {center} {amplitude}"
        case Bytes(data):
            return f"bytes {len(data)} " + " ".join(map(str, data))
    raise AssertionError(f"unknown value {value!r}")
