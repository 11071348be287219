"""The model file: mistakes are reported with file, line, place and reason; changes are picked up
while programs run, between one run and the next."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from edge_metrics.simulate.model import ModelError, load_model
from tests.helpers import EDGE_METRICS, Processes, wait_until
from tests.sim.support import SPACE_SERVER_MODEL, run, simulator, write_model

pytestmark = pytest.mark.sim


# A device's register table, to which each case below adds one line.
REGS = "buses:\n  0:\n    devices:\n      0x40:\n        registers:\n"


def errors_of(tmp_path: Path, text: str) -> list[str]:
    path = write_model(tmp_path / "bad.yaml", text)
    with pytest.raises(ModelError) as caught:
        load_model(path)
    return str(caught.value).replace(str(path), "FILE").splitlines()


class TestModelErrors:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("buses: [", "FILE:1:9: YAML syntax: expected the node content, but found '<stream end>'"),
            ("", "FILE: top level: the model is empty (expected `buses:`)"),
            ("busses: {}\n", "FILE:1:1: top level: unknown key 'busses' (expected one of: buses)"),
            ("buses:\n  x: {}\n", "FILE:2:3: buses: bus number 'x' is not an integer (write e.g. 0 or 0x40)"),
            ("buses:\n  0:\n    devices:\n      0x80: {}\n",
             "FILE:4:7: buses.0.devices: address 0x80 out of range 0x0..0x7f"),
            (REGS + "          0x00: {size: word, value: 70000}\n",
             "FILE:6:37: buses.0.devices.0x40.registers.0x00.value: value 70000 out of range -0x8000..0xffff"),
            (REGS + "          0x00: {size: long, value: 1}\n",
             "FILE:6:24: buses.0.devices.0x40.registers.0x00.size: expected byte, word or block, not 'long'"),
            ("buses:\n  0:\n    devices:\n      0x40: {nack: often}\n",
             "FILE:4:20: buses.0.devices.0x40.nack: expected a probability from 0 to 1, not 'often'"),
            ("buses:\n  0:\n    devices:\n      0x40: {delay: 5 seconds}\n",
             "FILE:4:21: buses.0.devices.0x40.delay: invalid duration '5 seconds'"
             " (expected e.g. 500ms, 10s, 1m30s, 2h)"),
            ("buses:\n  0: {hung: maybe}\n", "FILE:2:13: buses.0.hung: expected true or false, not 'maybe'"),
            ("buses:\n  0: {}\n  0x0: {}\n", "FILE:3:3: buses: bus number 0x0 listed twice"),
            (REGS + "          1: {value: {sequence: [1, 2]}}\n",
             "FILE:6:22: buses.0.devices.0x40.registers.1.value: a sequence needs `step:`"
             " (how long each value lasts, e.g. 5s)"),
        ],
    )
    def test_one_mistake(self, tmp_path: Path, text: str, expected: str) -> None:
        """Each mistake names the file, line:column, the place in the model and the reason."""
        assert errors_of(tmp_path, text) == [expected]

    def test_every_mistake_at_once(self, tmp_path: Path) -> None:
        """All problems are listed together, so one edit fixes them all; duplicate keys are caught."""
        errors = errors_of(tmp_path, """
            buses:
              0:
                devices:
                  0x40:
                    registers:
                      0x00: {size: word, order: middle, value: 1}
                      0x01: {value: 1, value: 2}
                      0x02:
                        size: word
                        value: 0
                        select: {register: 0x09, mask: 0x0f, values: {0x10: 1, 0x01: 2}}
        """)
        assert errors == [
            "FILE:7:37: buses.0.devices.0x40.registers.0x00.order: expected big or little, not 'middle'",
            "FILE:8:28: buses.0.devices.0x40.registers.0x01: duplicate key 'value'",
            "FILE:12:59: buses.0.devices.0x40.registers.0x02.select.values: selector value 0x10 has bits"
            " outside mask 0xf: it could never match",
            "FILE:7:11: buses.0.devices.0x40.registers.0x02.select: register 0x9 is not a register of this device",
        ]

    def test_cli_reports_errors_and_does_not_run_the_command(self, procs: Processes, tmp_path: Path) -> None:
        """`edge-metrics simulate` with a bad model prints the errors and exits 1 without starting the command."""
        model = write_model(tmp_path / "bad.yaml", "buses:\n  0:\n    hung: sometimes\n")
        marker = tmp_path / "ran"
        result = run(procs, [EDGE_METRICS, "simulate", "--model", model, "--", "touch", marker])
        assert result.code == 1
        assert result.err == f"{model}:3:11: buses.0.hung: expected true or false, not 'sometimes'\n"
        assert not marker.exists()

    def test_missing_file(self, procs: Processes, tmp_path: Path) -> None:
        """A model that cannot be read is named with the reason."""
        result = run(procs, [EDGE_METRICS, "simulate", "--model", tmp_path / "nope.yaml", "--", "true"])
        assert (result.code, result.err) == (1, f"{tmp_path}/nope.yaml: cannot read model: No such file or directory\n")

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["--", "true"], "--model FILE is required"),
            (["--model", "m.yaml"], "no COMMAND given"),
            (["--model"], "--model needs a FILE"),
            (["--modle", "m.yaml", "--", "true"], "unknown option --modle"),
            (["--model", "a.yaml", "--model=b.yaml", "--", "true"],
             "--model given twice (a.yaml, b.yaml): one model per run, with every bus in it"),
        ],
    )
    def test_usage_errors(self, procs: Processes, argv: list[str], message: str) -> None:
        """Bad usage: one line on stderr, exit 2."""
        result = run(procs, [EDGE_METRICS, "simulate", *argv])
        assert result.code == 2
        assert result.err.count("\n") == 1 and message in result.err

    def test_bundled_model_is_valid(self, procs: Processes) -> None:
        """The shipped model passes --check, which lists its devices."""
        result = run(procs, [EDGE_METRICS, "simulate", "--model", SPACE_SERVER_MODEL, "--check"])
        assert result.code == 0, result.err
        assert re.findall(r"0x[0-9a-f]{2} (\w+)", result.out) == ["hdc1080", "ina219", "ads1115"]


SIMPLE = """
    buses:
      0:
        devices:
          0x40:
            registers:
              0x00: {value: %s}
              0x01: {value: 0, writable: true}
"""


class TestReload:
    def test_change_between_two_runs(self, procs: Processes, tmp_path: Path) -> None:
        """Edit the model, run the next program: it sees the edit (it waits for the recompile)."""
        with simulator(procs, write_model(tmp_path / "m.yaml", SIMPLE % "0x11")) as sim:
            assert sim.run("i2cget", "-f", "-y", "0", "0x40", "0x00").out == "0x11\n"
            sim.rewrite(SIMPLE % "0x22")
            assert sim.run("i2cget", "-f", "-y", "0", "0x40", "0x00").out == "0x22\n"

    def test_invalid_edit_keeps_the_previous_model(self, procs: Processes, tmp_path: Path) -> None:
        """A broken edit is reported and the last good model keeps serving, without a wait per program."""
        with simulator(procs, write_model(tmp_path / "m.yaml", SIMPLE % "0x11")) as sim:
            sim.rewrite(SIMPLE % "'eleven'")
            result = sim.run("i2cget", "-f", "-y", "0", "0x40", "0x00")
            assert result.out == "0x11\n"
            sim.rewrite(SIMPLE % "0x33")
            assert sim.run("i2cget", "-f", "-y", "0", "0x40", "0x00").out == "0x33\n"

    def test_written_values_reset_on_reload(self, procs: Processes, tmp_path: Path) -> None:
        """Registers written by programs go back to the model's values when the model changes."""
        with simulator(procs, write_model(tmp_path / "m.yaml", SIMPLE % "0x11")) as sim:
            sim.run("i2cset", "-y", "0", "0x40", "0x01", "0x7e")
            assert sim.run("i2cget", "-f", "-y", "0", "0x40", "0x01").out == "0x7e\n"
            sim.rewrite(SIMPLE % "0x12")
            assert sim.run("i2cget", "-f", "-y", "0", "0x40", "0x01").out == "0x00\n"

    def test_running_collector_sees_the_change(self, procs: Processes, tmp_path: Path) -> None:
        """Under `edge-metrics simulate`, a collector running on schedule picks up an edited reading."""
        model = write_model(tmp_path / "m.yaml", SIMPLE % "0x11")
        scripts = tmp_path / "scripts"
        scripts.mkdir()
        (scripts / "nodes.conf").write_text("n1=probe:200ms\n")
        (scripts / "probe.sh").write_text("#!/bin/bash\necho \"probe=$(( $(i2cget -f -y 0 0x40 0x00) ))\"\n")
        output = tmp_path / "metrics.prom"
        procs.start([EDGE_METRICS, "simulate", "--model", model, "--", EDGE_METRICS, "run",
                     "--config", scripts / "nodes.conf", "--node-name", "n1", "--output", output],
                    env=dict(os.environ), log=tmp_path / "collector.log")

        def reading() -> str | None:
            text = output.read_text() if output.exists() else ""
            found = re.search(r"^edge_probe (\S+)$", text, re.M)
            return found.group(1) if found else None

        assert wait_until(reading, timeout=10, what="first reading") == "17"
        sim_text = SIMPLE % "0x2a"
        model.write_text(sim_text.replace("\n    ", "\n"))
        wait_until(lambda: reading() == "42", timeout=10, what="edited reading")


DEVICE = "buses:\n  1:\n    devices:\n      0x76:\n"


class TestChipModelErrors:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (DEVICE + "        chip: bme680\n",
             "FILE:5:15: buses.1.devices.0x76.chip: unknown chip 'bme680' (expected one of: bme280, sht3x, ina219, "
             "ads1115, tmp102)"),
            (DEVICE + "        chip: sht3x\n        fault: wrong_id\n",
             "FILE:6:16: buses.1.devices.0x76.fault: sht3x has no fault 'wrong_id' (expected one of: bad_crc, "
             "stuck_busy)"),
            (DEVICE + "        chip: bme280\n        inputs: {temperature: 0x100000}\n",
             "FILE:6:31: buses.1.devices.0x76.inputs.temperature: value 0x100000 out of range 0x0..0xfffff"),
            (DEVICE + "        chip: bme280\n        inputs: {pressur: 1}\n",
             "FILE:6:18: buses.1.devices.0x76.inputs: unknown key 'pressur' (expected one of: temperature, "
             "pressure, humidity, dig_T1, dig_T2, dig_T3, dig_P1, dig_P2, dig_P3, dig_P4, dig_P5, dig_P6, dig_P7, "
             "dig_P8, dig_P9, dig_H1, dig_H2, dig_H3, dig_H4, dig_H5, dig_H6)"),
            (DEVICE + "        chip: ina219\n        registers: {0x00: 1}\n",
             "FILE:6:20: buses.1.devices.0x76.registers: a chip model has its own registers: remove `registers:`"),
            (DEVICE + "        fault: bad_crc\n",
             "FILE:5:16: buses.1.devices.0x76.fault: `fault:` needs `chip:` (one of: bme280, sht3x, ina219, "
             "ads1115, tmp102)"),
        ],
    )
    def test_one_mistake(self, tmp_path: Path, text: str, expected: str) -> None:
        """A chip model's mistakes name the place and what would be valid, like a register file's."""
        assert errors_of(tmp_path, text) == [expected]

    def test_every_catalogue_model_is_valid(self) -> None:
        """The models the docs run (scripts/models/<chip>.yaml) load; each holds the chip of its name."""
        models = sorted((SPACE_SERVER_MODEL.parent).glob("*.yaml"))
        chips = {path.stem: load_model(path) for path in models if path.stem != "space_server"}
        assert sorted(chips) == ["ads1115", "bme280", "ina219", "sht3x", "tmp102"]
        for name, model in chips.items():
            (device,) = model.buses[0].devices
            assert device.chip is not None and device.chip.type == name
