from __future__ import annotations

import json
from pathlib import Path

from tests.schedule import COSTS, costs_from_durations, recorded_costs, unit_of


class TestUnits:
    def test_a_test_belongs_to_its_file(self) -> None:
        """Outside the fleets, a unit is a file: its module fixtures start once."""
        assert unit_of("tests/e2e/test_outage.py::TestOutageBackfill::test_x") == "tests/e2e/test_outage.py"

    def test_the_fleets_are_one_unit(self) -> None:
        """Both fleet files go to one worker, which runs them in turn instead of waiting on their lock."""
        assert unit_of("tests/fleet/test_fleet.py::TestFleet::test_a") == unit_of("tests/fleet/test_scale_out.py::t")


class TestCosts:
    def test_setup_call_and_teardown_add_up_per_file(self) -> None:
        """`--durations=0` lines become seconds per file, the costliest first; other lines are ignored."""
        lines = [
            "============================= slowest durations =============================",
            "120.50s setup    tests/e2e/test_outage.py::TestOutageBackfill::test_every_sample_of_the_outage_arrives",
            "3.00s call     tests/unit/test_parse.py::test_x[a b]",
            "0.40s teardown tests/e2e/test_outage.py::TestOutageBackfill::test_every_sample_of_the_outage_arrives",
            "1 passed in 1.00s",
        ]
        assert list(costs_from_durations(lines).items()) == [("tests/e2e/test_outage.py", 120.9),
                                                             ("tests/unit/test_parse.py", 3.0)]

    def test_files_of_one_unit_add_up(self, tmp_path: Path) -> None:
        table = tmp_path / "costs.json"
        table.write_text(json.dumps({"tests/fleet/test_fleet.py": 300, "tests/fleet/test_scale_out.py": 80,
                                     "tests/e2e/test_push.py": 120}))
        assert recorded_costs(table) == {"tests/fleet/": 380.0, "tests/e2e/test_push.py": 120.0}

    def test_the_committed_table_names_only_files_that_exist(self) -> None:
        """A renamed or split file must be measured again, or it would be scheduled as if it cost nothing."""
        repo = COSTS.parents[1]
        assert [file for file in json.loads(COSTS.read_text()) if not (repo / file).is_file()] == []
