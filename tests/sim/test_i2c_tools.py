"""The real i2c-tools programs and smbus2, unmodified, against simulated devices: what they print is
what the model says, with the byte order real hardware produces."""

from __future__ import annotations

import errno
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Processes
from tests.sim.support import Simulator, simulator, write_model

pytestmark = pytest.mark.sim

MODEL = """
    buses:
      1:
        devices:
          0x40:
            name: be-sensor
            registers:
              0x00: {size: word, order: big, value: 0x1234}
              0x01: {size: word, order: little, value: 0x1234}
              0x02: 0xab
              0x03: {size: word, value: -2}
              0x10: {size: word, value: 0x0100, writable: true}
              0x11: {size: word, value: 0x0200}
          0x48:
            registers:
              0x00:
                size: word
                value: 7
                select:
                  register: 0x01
                  mask: 0x7000
                  values: {0x4000: 100, 0x5000: 200}
              0x01: {size: word, value: 0x8583, writable: true}
          0x50:
            name: eeprom
            writable: true
            registers:
              0x00: 0x11
              0x01: 0x22
              0x02: 0x33
              0x20: {size: block, value: [1, 2, 3]}
          0x51: {absent: true}
          0x60:
            registers:
              0x00: {size: word, value: {sequence: [10, 20, 30], step: 1h}}
              0x01: {size: word, value: {ramp: {from: 0, to: 3600, period: 1h}}}
              0x02: {size: word, value: {sine: {center: 1000, amplitude: 500, period: 1m}}}
"""


@pytest.fixture
def sim(procs: Processes, tmp_path: Path) -> Iterator[Simulator]:
    with simulator(procs, write_model(tmp_path / "model.yaml", MODEL)) as session:
        yield session


def i2cget(sim: Simulator, *args: str) -> str:
    result = sim.run("i2cget", "-f", "-y", "1", *args)
    assert result.code == 0, result.err
    return result.out.strip()


class TestI2cget:
    def test_word_reads_come_back_least_significant_byte_first(self, sim: Simulator) -> None:
        """A big-endian register 0x1234 reads as 0x3412 through SMBus, as on hardware; a little-endian one as is."""
        assert i2cget(sim, "0x40", "0x00", "w") == "0x3412"
        assert i2cget(sim, "0x40", "0x01", "w") == "0x1234"

    def test_byte_reads(self, sim: Simulator) -> None:
        """A byte read of a word register gives its first byte on the wire; byte registers give their value."""
        assert i2cget(sim, "0x40", "0x02") == "0xab"
        assert i2cget(sim, "0x40", "0x00", "b") == "0x12"
        assert i2cget(sim, "0x40", "0x01", "b") == "0x34"

    def test_negative_values_are_twos_complement(self, sim: Simulator) -> None:
        """-2 in a big-endian word is 0xfffe on the wire: 0xfeff after the SMBus swap."""
        assert i2cget(sim, "0x40", "0x03", "w") == "0xfeff"

    def test_unlisted_register_reads_zero(self, sim: Simulator) -> None:
        """Registers the model does not list read as 0x00 on a present device."""
        assert i2cget(sim, "0x40", "0x7f") == "0x00"

    def test_absent_device_fails_like_hardware(self, sim: Simulator) -> None:
        """No acknowledge: i2cget prints its read error and exits non-zero, for listed-absent and unlisted addresses."""
        for address in ("0x51", "0x52"):
            result = sim.run("i2cget", "-f", "-y", "1", address, "0x00")
            assert (result.code, result.out, result.err) == (2, "", "Error: Read failed\n")

    def test_time_varying_values(self, sim: Simulator) -> None:
        """Sequences step and ramps/sines move with wall-clock time, so every process sees the same value."""
        before = int(time.time() * 1000)
        sequence = int(i2cget(sim, "0x60", "0x00", "w"), 16)
        ramp = int(i2cget(sim, "0x60", "0x01", "w"), 16)
        sine = int(i2cget(sim, "0x60", "0x02", "w"), 16)
        after = int(time.time() * 1000)
        swap = lambda word: ((word & 0xFF) << 8) | (word >> 8)  # noqa: E731
        assert swap(sequence) in {[10, 20, 30][(t // 3_600_000) % 3] for t in (before, after)}
        assert (before % 3_600_000) // 1000 - 1 <= swap(ramp) <= (after % 3_600_000) // 1000 + 1
        assert 500 <= swap(sine) <= 1500


class TestWrites:
    def test_written_register_is_seen_by_the_next_process(self, sim: Simulator) -> None:
        """i2cset in one process, i2cget in the next: the device keeps what was written."""
        assert sim.run("i2cset", "-y", "1", "0x40", "0x10", "0xbeef", "w").code == 0
        assert i2cget(sim, "0x40", "0x10", "w") == "0xbeef"
        assert i2cget(sim, "0x40", "0x10", "b") == "0xef"  # big-endian: 0xefbe, first byte 0xef

    def test_read_only_register_ignores_writes(self, sim: Simulator) -> None:
        """Writes to registers not marked writable are acknowledged and have no effect, as on a sensor."""
        assert sim.run("i2cset", "-y", "1", "0x40", "0x11", "0xbeef", "w").code == 0
        assert i2cget(sim, "0x40", "0x11", "w") == "0x0002"

    def test_write_then_read_selects_the_value(self, sim: Simulator) -> None:
        """A register chosen by bits of another (ADS1115 MUX): the value follows what was written."""
        assert i2cget(sim, "0x48", "0x00", "w") == "0x0700"  # reset config 0x8583: MUX 000, no case
        sim.run("i2cset", "-y", "1", "0x48", "0x01", "0x83c3", "w")  # config 0xc383: MUX 100
        assert i2cget(sim, "0x48", "0x00", "w") == "0x6400"  # 100
        sim.run("i2cset", "-y", "1", "0x48", "0x01", "0x83d3", "w")  # MUX 101
        assert i2cget(sim, "0x48", "0x00", "w") == "0xc800"  # 200

    def test_writable_device_behaves_like_memory(self, sim: Simulator) -> None:
        """A device marked writable takes writes anywhere, also in registers the model does not list."""
        sim.run("i2cset", "-y", "1", "0x50", "0x80", "0x5a")
        assert i2cget(sim, "0x50", "0x80") == "0x5a"
        assert i2cget(sim, "0x50", "0x00") == "0x11"

    def test_pointer_set_by_send_byte_and_read_by_receive_byte(self, sim: Simulator) -> None:
        """`i2cset` without a value sets the register pointer; `i2cget` without a register reads there and
        moves on, as an EEPROM's current-address read does, across processes."""
        assert sim.run("i2cset", "-y", "1", "0x50", "0x01").code == 0
        assert i2cget(sim, "0x50") == "0x22"
        assert i2cget(sim, "0x50") == "0x33"

    def test_i2cdump_current_address_mode(self, sim: Simulator) -> None:
        """i2cdump's `c` mode (send byte, then receive bytes) walks the EEPROM in order."""
        result = sim.run("i2cdump", "-y", "1", "0x50", "c")
        assert result.code == 0, result.err
        assert [dump_table(result.out)[r] for r in range(4)] == ["11", "22", "33", "00"]


def dump_table(text: str) -> dict[int, str]:
    """i2cdump's byte-mode table: register -> hex byte."""
    cells: dict[int, str] = {}
    for line in text.splitlines()[1:]:
        row, _, rest = line.partition(":")
        for index, value in enumerate(rest.split()[:16]):
            cells[int(row, 16) + index] = value
    return cells


class TestOtherTools:
    def test_i2cdetect_lists_the_present_devices(self, sim: Simulator) -> None:
        """i2cdetect's scan finds exactly the devices that acknowledge (absent ones show `--`)."""
        result = sim.run("i2cdetect", "-y", "1")
        assert result.code == 0, result.err
        found = sorted(int(cell, 16) for cell in re.findall(r"(?<= )[0-9a-f]{2}(?= |$)", "\n".join(
            line.partition(":")[2] for line in result.lines()[1:]), flags=re.M))
        assert found == [0x40, 0x48, 0x50, 0x60]

    def test_i2cdump_byte_mode(self, sim: Simulator) -> None:
        """i2cdump (byte data) shows each register's first byte on the wire; unlisted registers 00."""
        result = sim.run("i2cdump", "-y", "1", "0x40", "b")
        assert result.code == 0, result.err
        cells = dump_table(result.out)
        assert [cells[r] for r in range(5)] == ["12", "34", "ab", "ff", "00"]
        assert cells[0xFF] == "00"

    def test_i2cdump_word_mode(self, sim: Simulator) -> None:
        """i2cdump in word mode prints SMBus words: big-endian registers swapped; a word read of a byte
        register runs on into the next register's first byte (0xab, then 0xff of 0xfffe)."""
        result = sim.run("i2cdump", "-y", "1", "0x40", "w")
        assert result.code == 0, result.err
        row = result.lines()[1].split()
        assert row[:5] == ["00:", "3412", "1234", "ffab", "feff"]

    def test_i2ctransfer_write_pointer_then_read(self, sim: Simulator) -> None:
        """Plain I2C (I2C_RDWR): writing the pointer then reading streams the register's bytes, MSB first."""
        result = sim.run("i2ctransfer", "-y", "1", "w1@0x40", "0x00", "r4")
        assert (result.code, result.out.strip()) == (0, "0x12 0x34 0x34 0x12")

    def test_i2ctransfer_write_is_seen_by_i2cget(self, sim: Simulator) -> None:
        """A register written with a raw I2C message (MSB first) reads back swapped through SMBus."""
        assert sim.run("i2ctransfer", "-y", "1", "w3@0x40", "0x10", "0xca", "0xfe").code == 0
        assert i2cget(sim, "0x40", "0x10", "w") == "0xfeca"

    def test_i2ctransfer_to_absent_device_fails(self, sim: Simulator) -> None:
        """A message to an address nobody acknowledges fails the whole transfer."""
        result = sim.run("i2ctransfer", "-y", "1", "w1@0x51", "0x00", "r1")
        assert result.code != 0
        assert "No such device or address" in result.err


SMBUS2_PROGRAM = """
import errno, json, sys
from smbus2 import SMBus, i2c_msg
out = {}
with SMBus(1) as bus:
    out["word"] = bus.read_word_data(0x40, 0x00)
    out["byte"] = bus.read_byte_data(0x40, 0x02)
    out["i2c_block"] = bus.read_i2c_block_data(0x50, 0x00, 3)
    out["block"] = bus.read_block_data(0x50, 0x20)
    bus.write_word_data(0x40, 0x10, 0x3412)
    out["written"] = bus.read_word_data(0x40, 0x10)
    write, read = i2c_msg.write(0x40, [0x00]), i2c_msg.read(0x40, 2)
    bus.i2c_rdwr(write, read)
    out["rdwr"] = list(read)
    try:
        bus.read_byte_data(0x51, 0x00)
    except OSError as error:
        out["absent_errno"] = error.errno
print(json.dumps(out))
"""


class TestSmbus2:
    def test_smbus2_sees_the_model(self, sim: Simulator) -> None:
        """Python's smbus2 (open + ioctl from another runtime) gets the same answers as i2c-tools."""
        result = sim.run(sys.executable, "-c", SMBUS2_PROGRAM)
        assert result.code == 0, result.err
        import json

        out = json.loads(result.out)
        assert out == {
            "word": 0x3412,
            "byte": 0xAB,
            "i2c_block": [0x11, 0x22, 0x33],
            "block": [1, 2, 3],
            "written": 0x3412,
            "rdwr": [0x12, 0x34],
            "absent_errno": errno.ENXIO,
        }


class TestDeviceNodes:
    def test_buses_of_the_model_look_like_i2c_dev_nodes(self, sim: Simulator) -> None:
        """A script's `[[ -c /dev/i2c-1 ]]` guard, `stat` and Python's os.path agree with the model: bus 1 is a
        character device (major 89, as i2c-dev); bus 0, not in the model, does not exist."""
        result = sim.sh('[[ -c /dev/i2c-1 ]] && echo bus1; [[ -e /dev/i2c-0 ]] || echo no-bus0; '
                        'stat -c "%F %t" /dev/i2c-1; '
                        f'{sys.executable} -c "import os; print(os.path.exists(\'/dev/i2c-1\'), '
                        'os.path.exists(\'/dev/i2c-0\'), os.access(\'/dev/i2c-1\', os.W_OK))"')
        assert result.lines() == ["bus1", "no-bus0", "character special file 59", "True False True"]
