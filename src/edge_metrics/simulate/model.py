"""The device model: a YAML file read into frozen value objects, with every mistake reported as
`file:line:column: place: reason` (place is the path of keys, e.g. `buses.0.devices.0x40.registers.0x01`).

The YAML is walked as a node tree (yaml.compose) rather than loaded, so that errors carry positions,
duplicate keys are caught, and `0x40` means the same thing whatever YAML version a reader assumes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from edge_metrics.durations import DurationError, parse_duration

if TYPE_CHECKING:
    from yaml.nodes import Node

T = TypeVar("T")

# Values a register can hold, by size: negative numbers are stored in two's complement.
RANGES = {"byte": (-0x80, 0xFF), "word": (-0x8000, 0xFFFF)}
MAX_BLOCK = 32


class ModelError(Exception):
    """The model file cannot be used; the message lists every problem, one per line."""


@dataclass(frozen=True, slots=True)
class Const:
    value: int


@dataclass(frozen=True, slots=True)
class Sequence:
    """Values in turn, each for `step_ms`, stepped by wall-clock time."""

    values: tuple[int, ...]
    step_ms: int


@dataclass(frozen=True, slots=True)
class Ramp:
    """From `start` to `end` over `period_ms`, then again (a sawtooth)."""

    start: int
    end: int
    period_ms: int


@dataclass(frozen=True, slots=True)
class Sine:
    center: int
    amplitude: int
    period_ms: int


@dataclass(frozen=True, slots=True)
class Bytes:
    """The data of a block register."""

    values: tuple[int, ...]


Value = Const | Sequence | Ramp | Sine | Bytes


@dataclass(frozen=True, slots=True)
class Case:
    """Use `value` while (register `select` & `mask`) == `key`."""

    select: int
    mask: int
    key: int
    value: Value


@dataclass(frozen=True, slots=True)
class Register:
    number: int
    size: Literal["byte", "word", "block"]
    big_endian: bool
    writable: bool
    value: Value
    cases: tuple[Case, ...]


@dataclass(frozen=True, slots=True)
class Chip:
    """A chip model (sim/chips.c) in place of a register file: its inputs in the catalogue's order."""

    type: str
    fault: str | None
    inputs: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Device:
    address: int
    name: str
    absent: bool
    nack: float
    delay_us: int
    writable: bool
    registers: tuple[Register, ...]
    chip: Chip | None = None


@dataclass(frozen=True, slots=True)
class Bus:
    number: int
    hung: bool
    delay_us: int
    devices: tuple[Device, ...]


@dataclass(frozen=True, slots=True)
class Model:
    source: Path
    buses: tuple[Bus, ...]


def load_model(path: Path) -> Model:
    """Read and validate the model at `path`; raises ModelError naming every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else str(error)
        raise ModelError(f"{path}: cannot read model: {reason}") from None
    return parse_model(text, path)


def parse_model(text: str, path: Path) -> Model:
    import yaml  # the simulator's own dependency (extra `simulate`); the collector never loads it

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ModelError(f"{where}: YAML syntax: {error.problem or error.context}") from None
    except yaml.YAMLError as error:
        raise ModelError(f"{path}: YAML syntax: {error}") from None
    reader = _Reader(path)
    buses = reader.model(root)
    if reader.errors:
        raise ModelError("\n".join(reader.errors))
    return Model(source=path.resolve(), buses=buses)


class _Reader:
    """Walks the node tree, collecting errors instead of stopping at the first."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.errors: list[str] = []

    def error(self, node: Node | None, place: str, reason: str) -> None:
        where = str(self.path)
        if node is not None:
            where += f":{node.start_mark.line + 1}:{node.start_mark.column + 1}"
        self.errors.append(f"{where}: {place or 'top level'}: {reason}")

    # -- node helpers ---------------------------------------------------------------------------

    def mapping(self, node: Node | None, place: str, allowed: tuple[str, ...] | None) -> dict[str, Node]:
        """A mapping's entries by key text; unknown keys (when `allowed` is given) and duplicates are errors."""
        from yaml.nodes import MappingNode, ScalarNode

        if not isinstance(node, MappingNode):
            self.error(node, place, "expected a mapping")
            return {}
        entries: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.error(key_node, place, "keys must be plain values")
                continue
            key = str(key_node.value)
            if key in entries:
                self.error(key_node, place, f"duplicate key {key!r}")
            elif allowed is not None and key not in allowed:
                self.error(key_node, place, f"unknown key {key!r} (expected one of: {', '.join(allowed)})")
            else:
                entries[key] = value_node
                setattr(value_node, "_edge_key_node", key_node)  # noqa: B010 - remember where the key was
        return entries

    def scalar(self, node: Node, place: str) -> str | None:
        from yaml.nodes import ScalarNode

        if not isinstance(node, ScalarNode):
            self.error(node, place, "expected a single value")
            return None
        return str(node.value)

    def integer(self, node: Node, place: str, low: int, high: int, what: str = "value") -> int | None:
        text = self.scalar(node, place)
        if text is None:
            return None
        try:
            number = int(text, 0)
        except ValueError:
            self.error(node, place, f"{what} {text!r} is not an integer (write e.g. 42, -3 or 0x2a)")
            return None
        if not low <= number <= high:
            self.error(node, place, f"{what} {text} out of range {_hex(low)}..{_hex(high)}")
            return None
        return number

    def key_integer(self, key: str, node: Node, place: str, low: int, high: int, what: str) -> int | None:
        key_node = getattr(node, "_edge_key_node", node)
        try:
            number = int(key, 0)
        except ValueError:
            self.error(key_node, place, f"{what} {key!r} is not an integer (write e.g. 0 or 0x40)")
            return None
        if not low <= number <= high:
            self.error(key_node, place, f"{what} {key} out of range {_hex(low)}..{_hex(high)}")
            return None
        return number

    def boolean(self, node: Node | None, place: str) -> bool:
        if node is None:
            return False
        text = self.scalar(node, place)
        if text is not None and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if text is not None:
            self.error(node, place, f"expected true or false, not {text!r}")
        return False

    def duration_ms(self, node: Node | None, place: str, *, zero_ok: bool) -> int:
        if node is None:
            return 0
        text = self.scalar(node, place)
        if text is None:
            return 0
        if zero_ok and text.strip() in ("0", "0s", "0ms"):
            return 0
        try:
            seconds = parse_duration(text.strip())
        except DurationError as error:
            self.error(node, place, str(error))
            return 0
        milliseconds = round(seconds * 1000)
        if milliseconds < 1:
            self.error(node, place, f"duration {text!r} is below the simulator's 1ms resolution")
        return milliseconds

    def each(self, node: Node | None, place: str, what: str, low: int, high: int,
             read: Callable[[int, Node, str], T | None]) -> tuple[T, ...]:
        """Entries of a mapping keyed by numbers (buses, addresses, registers), in numeric order."""
        items: list[tuple[int, T]] = []
        for key, child in self.mapping(node, place, None).items():
            number = self.key_integer(key, child, place, low, high, what)
            if number is None:
                continue
            if any(existing == number for existing, _ in items):
                self.error(getattr(child, "_edge_key_node", child), place, f"{what} {key} listed twice")
                continue
            item = read(number, child, f"{place}.{key}")
            if item is not None:
                items.append((number, item))
        return tuple(item for _, item in sorted(items, key=lambda pair: pair[0]))

    # -- the schema -----------------------------------------------------------------------------

    def model(self, root: Node | None) -> tuple[Bus, ...]:
        if root is None:
            self.error(None, "", "the model is empty (expected `buses:`)")
            return ()
        entries = self.mapping(root, "", ("buses",))
        if "buses" not in entries:
            if not self.errors:
                self.error(root, "", "missing `buses:`")
            return ()
        return self.each(entries["buses"], "buses", "bus number", 0, 1_000_000, self.bus)

    def bus(self, number: int, node: Node, place: str) -> Bus | None:
        entries = self.mapping(node, place, ("hung", "delay", "devices"))
        devices = self.each(entries.get("devices"), f"{place}.devices", "address", 0, 0x7F, self.device) \
            if "devices" in entries else ()
        return Bus(
            number=number,
            hung=self.boolean(entries.get("hung"), f"{place}.hung"),
            delay_us=1000 * self.duration_ms(entries.get("delay"), f"{place}.delay", zero_ok=True),
            devices=devices,
        )

    def device(self, address: int, node: Node, place: str) -> Device | None:
        entries = self.mapping(node, place, ("name", "absent", "nack", "delay", "writable", "registers", "chip",
                                             "fault", "inputs"))
        name = self.scalar(entries["name"], f"{place}.name") if "name" in entries else ""
        nack = 0.0
        if "nack" in entries:
            text = self.scalar(entries["nack"], f"{place}.nack")
            try:
                nack = float(text) if text is not None else 0.0
                if not 0.0 <= nack <= 1.0:
                    raise ValueError
            except ValueError:
                self.error(entries["nack"], f"{place}.nack", f"expected a probability from 0 to 1, not {text!r}")
                nack = 0.0
        writable = self.boolean(entries.get("writable"), f"{place}.writable")
        registers = self.each(
            entries.get("registers"), f"{place}.registers", "register", 0, 0xFF,
            lambda number, child, where: self.register(number, child, where),
        ) if "registers" in entries else ()
        listed = {register.number for register in registers}
        for register in registers:
            for case in register.cases:
                if case.select not in listed and not writable:
                    self.error(entries["registers"], f"{place}.registers.{register.number:#04x}.select",
                               f"register {_hex(case.select)} is not a register of this device")
        return Device(
            address=address,
            name=name or "",
            absent=self.boolean(entries.get("absent"), f"{place}.absent"),
            nack=nack,
            delay_us=1000 * self.duration_ms(entries.get("delay"), f"{place}.delay", zero_ok=True),
            writable=writable,
            registers=registers,
            chip=self.chip(entries, place),
        )

    def chip(self, entries: dict[str, Node], place: str) -> Chip | None:
        """`chip: NAME` with its optional `fault:` and `inputs:`; a chip model has no register file."""
        from edge_metrics.simulate.chips import CHIPS

        if "chip" not in entries:
            for key in ("fault", "inputs"):
                if key in entries:
                    self.error(entries[key], f"{place}.{key}", f"`{key}:` needs `chip:` (one of: {', '.join(CHIPS)})")
            return None
        name = self.scalar(entries["chip"], f"{place}.chip")
        chip_type = CHIPS.get(name or "")
        if chip_type is None:
            self.error(entries["chip"], f"{place}.chip", f"unknown chip {name!r} (expected one of: {', '.join(CHIPS)})")
            return None
        for key in ("registers", "writable"):
            if key in entries:
                self.error(entries[key], f"{place}.{key}", f"a chip model has its own registers: remove `{key}:`")
        fault = None
        if "fault" in entries:
            fault = self.scalar(entries["fault"], f"{place}.fault")
            if fault not in chip_type.faults:
                self.error(entries["fault"], f"{place}.fault",
                           f"{name} has no fault {fault!r} (expected one of: {', '.join(chip_type.faults)})")
        names = tuple(item.name for item in chip_type.inputs)
        given = self.mapping(entries["inputs"], f"{place}.inputs", names) if "inputs" in entries else {}
        values: list[Value] = []
        for item in chip_type.inputs:
            node = given.get(item.name)
            value = Const(item.default) if node is None else \
                self.value(node, f"{place}.inputs.{item.name}", "word", (item.low, item.high))
            values.append(value if value is not None else Const(item.default))
        return Chip(chip_type.name, fault, tuple(values))

    def register(self, number: int, node: Node, place: str) -> Register | None:
        from yaml.nodes import MappingNode

        if not isinstance(node, MappingNode):  # shorthand: `0x02: 0x12` is a constant byte register
            byte = self.integer(node, place, *RANGES["byte"])
            return None if byte is None else Register(number, "byte", True, False, Const(byte), ())
        entries = self.mapping(node, place, ("size", "order", "value", "writable", "select"))
        size_text = self.scalar(entries["size"], f"{place}.size") if "size" in entries else "byte"
        if size_text not in ("byte", "word", "block"):
            self.error(entries.get("size"), f"{place}.size", f"expected byte, word or block, not {size_text!r}")
            return None
        size: Literal["byte", "word", "block"] = size_text  # type: ignore[assignment]
        big_endian = True
        if "order" in entries:
            order = self.scalar(entries["order"], f"{place}.order")
            if size != "word":
                self.error(entries["order"], f"{place}.order", "byte order applies to word registers only")
            elif order not in ("big", "little"):
                self.error(entries["order"], f"{place}.order", f"expected big or little, not {order!r}")
            big_endian = order != "little"
        if "value" not in entries:
            self.error(node, place, "missing `value:`")
            return None
        value = self.value(entries["value"], f"{place}.value", size)
        cases = self.select(entries["select"], f"{place}.select", size) if "select" in entries else ()
        if value is None:
            return None
        if size == "block" and cases:
            self.error(entries["select"], f"{place}.select", "block registers cannot be selected")
        return Register(number, size, big_endian, self.boolean(entries.get("writable"), f"{place}.writable"),
                        value, cases)

    def value(self, node: Node, place: str, size: str, bounds: tuple[int, int] | None = None) -> Value | None:
        """A register's value of `size`, or a chip input's within `bounds`."""
        from yaml.nodes import MappingNode, SequenceNode

        if size == "block":
            if not isinstance(node, SequenceNode) or not 1 <= len(node.value) <= MAX_BLOCK:
                self.error(node, place, f"a block register's value is a list of 1 to {MAX_BLOCK} bytes")
                return None
            data = [self.integer(item, place, 0, 0xFF, "byte") for item in node.value]
            return None if None in data else Bytes(tuple(b for b in data if b is not None))
        low, high = bounds or RANGES[size]
        if not isinstance(node, MappingNode):
            number = self.integer(node, place, low, high)
            return None if number is None else Const(number)
        kinds = ("sequence", "step", "ramp", "sine")
        entries = self.mapping(node, place, kinds)
        if "sequence" in entries:
            items = entries["sequence"]
            if not isinstance(items, SequenceNode) or not items.value:
                self.error(items, f"{place}.sequence", "expected a non-empty list of values")
                return None
            values = [self.integer(item, f"{place}.sequence", low, high) for item in items.value]
            if "step" not in entries:
                self.error(node, place, "a sequence needs `step:` (how long each value lasts, e.g. 5s)")
                return None
            step = self.duration_ms(entries["step"], f"{place}.step", zero_ok=False)
            if None in values or step <= 0:
                return None
            return Sequence(tuple(v for v in values if v is not None), step)
        for kind, fields in (("ramp", ("from", "to", "period")), ("sine", ("center", "amplitude", "period"))):
            if kind not in entries:
                continue
            where = f"{place}.{kind}"
            parts = self.mapping(entries[kind], where, fields)
            missing = [field for field in fields if field not in parts]
            if missing:
                self.error(entries[kind], where, f"missing {', '.join(missing)}")
                return None
            period = self.duration_ms(parts["period"], f"{where}.period", zero_ok=False)
            first = self.integer(parts[fields[0]], f"{where}.{fields[0]}", low, high)
            second = self.integer(parts[fields[1]], f"{where}.{fields[1]}", 0 if kind == "sine" else low, high)
            if first is None or second is None or period <= 0:
                return None
            if kind == "ramp":
                return Ramp(first, second, period)
            if not (low <= first - second and first + second <= high):
                self.error(entries[kind], where, f"center ± amplitude leaves the {'input' if bounds else size} range")
                return None
            return Sine(first, second, period)
        self.error(node, place, "expected a number, or one of sequence (with step), ramp, sine")
        return None

    def select(self, node: Node, place: str, size: str) -> tuple[Case, ...]:
        entries = self.mapping(node, place, ("register", "mask", "values"))
        missing = [field for field in ("register", "values") if field not in entries]
        if missing:
            self.error(node, place, f"missing {', '.join(missing)}")
            return ()
        select = self.integer(entries["register"], f"{place}.register", 0, 0xFF, "register")
        mask = self.integer(entries["mask"], f"{place}.mask", 1, 0xFFFF, "mask") if "mask" in entries else 0xFFFF
        cases: list[Case] = []
        for key, child in self.mapping(entries["values"], f"{place}.values", None).items():
            number = self.key_integer(key, child, f"{place}.values", 0, 0xFFFF, "selector value")
            value = self.value(child, f"{place}.values.{key}", size)
            if number is None or value is None or select is None or mask is None:
                continue
            if number & ~mask:
                self.error(getattr(child, "_edge_key_node", child), f"{place}.values",
                           f"selector value {key} has bits outside mask {_hex(mask)}: it could never match")
                continue
            cases.append(Case(select, mask, number, value))
        return tuple(cases)


def _hex(number: int) -> str:
    return f"-{-number:#x}" if number < 0 else f"{number:#x}"


def source_stamp(path: Path) -> tuple[int, int]:
    """What the preloaded library compares to notice that the YAML changed: (mtime in ns, size)."""
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size
