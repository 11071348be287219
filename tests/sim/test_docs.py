"""The walkthroughs of docs/simulator.md work as written: their model, script and expected output."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from tests.helpers import REPO, Processes
from tests.sim.support import SPACE_SERVER, SPACE_SERVER_MODEL, simulator

pytestmark = pytest.mark.sim

DOC = (REPO / "docs" / "simulator.md").read_text()


def section(title: str) -> str:
    start = DOC.index(f"## {title}")
    end = DOC.find("\n## ", start + 1)
    return DOC[start:end if end > 0 else None]


def code_blocks(text: str, language: str) -> list[str]:
    return [textwrap.dedent(block) for block in re.findall(rf"```{language}\n(.*?)^\s*```", text, re.S | re.M)]


class TestWalkthroughs:
    def test_scenario_1_new_reading(self, procs: Processes, tmp_path: Path) -> None:
        """The snippet added after the humidity read exports the HDC1080 battery bit the model sets."""
        snippet = code_blocks(section("Scenario 1"), "bash")[0]
        script = SPACE_SERVER.read_text()
        anchor = "  emit humidity %.2f 'r / 65536 * 100' \"$raw\"\nelse failed=1; fi\n"
        assert anchor in script
        (tmp_path / "space_server.sh").write_text(script.replace(anchor, anchor + snippet, 1))
        model = SPACE_SERVER_MODEL.read_text()
        assert "0x02: {size: word, value: 0x1000}" in model
        model_path = tmp_path / "model.yaml"
        model_path.write_text(model.replace("0x02: {size: word, value: 0x1000}", "0x02: {size: word, value: 0x1800}"))
        with simulator(procs, model_path) as sim:
            low = sim.run("bash", tmp_path / "space_server.sh")
            model_path.write_text(model)
            normal = sim.run("bash", tmp_path / "space_server.sh")
        assert low.code == 0, low.err
        assert "sensor_supply_low=1" in low.lines() and "sensor_supply_low=0" in normal.lines()

    def test_scenario_2_new_script(self, procs: Processes, tmp_path: Path) -> None:
        """The TMP102 script of scenario 2 converts each of the model's four values as the doc says."""
        text = section("Scenario 2")
        model_path = tmp_path / "board_temp.yaml"
        model_path.write_text(code_blocks(text, "yaml")[0])
        script = tmp_path / "board_temp.sh"
        script.write_text(code_blocks(text, "bash")[0])
        model = model_path.read_text()
        sequence = "value: {sequence: [0x1900, 0xe700, 0x0000, 0x7ff0], step: 2s}"
        assert sequence in model
        printed = {}
        with simulator(procs, model_path) as sim:
            for raw in ("0x1900", "0xe700", "0x0000", "0x7ff0"):
                model_path.write_text(model.replace(sequence, f"value: {raw}"))
                result = sim.run("bash", script)
                assert result.code == 0, result.err
                printed[raw] = result.out
        assert printed == {"0x1900": "board_temperature_celsius=25.0000\n",
                           "0xe700": "board_temperature_celsius=-25.0000\n",
                           "0x0000": "board_temperature_celsius=0.0000\n",
                           "0x7ff0": "board_temperature_celsius=127.9375\n"}
