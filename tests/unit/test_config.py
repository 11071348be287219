from __future__ import annotations

from pathlib import Path

import pytest

from edge_metrics.config import ConfigError, load_config, parse_config

SCRIPT = "#!/bin/bash\necho x=1\n"


def write_scripts(directory: Path, *names: str, body: str = SCRIPT) -> None:
    for name in names:
        (directory / f"{name}.sh").write_text(body)


def load(tmp_path: Path, text: str, *scripts: str) -> object:
    conf = tmp_path / "nodes.conf"
    conf.write_text(text)
    write_scripts(tmp_path, *scripts)
    return load_config(conf, scripts_dir=tmp_path, default_interval=15)


class TestSeedFormat:
    def test_seed_file_with_extensions(self, tmp_path: Path) -> None:
        """The seed's lines, comments, globs and multi-script lines all parse into one plan per node."""
        config = load(
            tmp_path,
            "# comment\n"
            "bupt-a=space_server:10s\n"
            "edge-node-01=jetson_nano:30s     # inline comment\n"
            "gateway-7=default\n"
            "edge-*=jetson_nano:30s\n"
            "lab-3=space_server:10s,power_rail:1m\n",
            "space_server", "jetson_nano", "power_rail",
        )
        plans = {node: config.plan_for(node) for node in ("bupt-a", "edge-node-01", "gateway-7", "lab-3")}  # type: ignore[attr-defined]
        assert [(j.script, j.interval) for j in plans["bupt-a"].jobs] == [("space_server", 10)]
        assert [(j.script, j.interval) for j in plans["edge-node-01"].jobs] == [("jetson_nano", 30)]
        assert plans["gateway-7"].jobs == ()
        assert [(j.script, j.interval) for j in plans["lab-3"].jobs] == [("space_server", 10), ("power_rail", 60)]
        assert plans["bupt-a"].jobs[0].path == tmp_path / "space_server.sh"

    def test_missing_interval_uses_default(self, tmp_path: Path) -> None:
        """`NODE=SCRIPT` without an interval runs at the default interval."""
        config = load(tmp_path, "n1=s\n", "s")
        assert config.plan_for("n1").jobs[0].interval == 15  # type: ignore[attr-defined]


class TestSelection:
    TEXT = "edge-*=glob_a:1s\nedge-node-01=exact:2s\nedge-node-*=glob_b:3s\n*=fallback:4s\n"

    @pytest.mark.parametrize(
        ("node", "script", "line"),
        [
            ("edge-node-01", "exact", 2),  # exact wins even though a glob comes first
            ("edge-node-02", "glob_a", 1),  # first matching glob in file order
            ("other", "fallback", 4),
        ],
    )
    def test_exact_then_first_glob(self, tmp_path: Path, node: str, script: str, line: int) -> None:
        """An exact name wins; otherwise the first matching glob in file order."""
        config = load(tmp_path, self.TEXT, "glob_a", "exact", "glob_b", "fallback")
        plan = config.plan_for(node)  # type: ignore[attr-defined]
        assert [j.script for j in plan.jobs] == [script]
        assert plan.line == line

    def test_no_match_is_default(self, tmp_path: Path) -> None:
        """A node no line matches runs no script (implicit `default`)."""
        config = load(tmp_path, "bupt-a=s:1s\n", "s")
        plan = config.plan_for("somewhere-else")  # type: ignore[attr-defined]
        assert plan.jobs == () and plan.line is None


class TestProblems:
    @pytest.mark.parametrize(
        ("line", "reason"),
        [
            ("bupt-a", "expected NODE=SCRIPT[:INTERVAL]"),
            ("bupt-a=", "missing script name"),
            ("bupt-a=s:10x", "invalid duration '10x'"),
            ("bupt-a=s:0s", "must be positive"),
            ("bupt-a=s:-1s", "invalid duration"),
            ("bupt-a=../etc/passwd:1s", "invalid script name '../etc/passwd'"),
            ("bupt-a=a/b", "invalid script name 'a/b'"),
            ("bupt-a=s,s", "listed twice"),
            ("bupt-a=default,s", "'default' cannot be combined"),
            ("bad node=s", "invalid node name"),
        ],
    )
    def test_each_problem_names_line_and_reason(self, line: str, reason: str) -> None:
        """Every malformed line is reported as `file:line: reason`."""
        _, problems = parse_config(f"# header\n{line}\n", source="nodes.conf", default_interval=15)
        assert len(problems) == 1
        assert problems[0].startswith("nodes.conf:2: ")
        assert reason in problems[0]

    def test_all_problems_at_once(self, tmp_path: Path) -> None:
        """Several problems, including a missing script and a duplicate node, are reported together."""
        conf = tmp_path / "nodes.conf"
        conf.write_text("a=missing:1s\nb=s:xx\na=s\nc=s\n")
        write_scripts(tmp_path, "s")
        with pytest.raises(ConfigError) as caught:
            load_config(conf, scripts_dir=tmp_path, default_interval=15)
        problems = caught.value.problems
        assert len(problems) == 3
        assert problems[0].startswith(f"{conf}:2: ") and "invalid duration" in problems[0]
        assert problems[1].startswith(f"{conf}:3: ") and "duplicate entry for node 'a' (first on line 1)" in problems[1]
        assert problems[2].startswith(f"{conf}:1: ") and "missing.sh does not exist" in problems[2]

    def test_script_without_bash_shebang(self, tmp_path: Path) -> None:
        """A script whose first line is not `#!/bin/bash` is rejected with its own file:line."""
        conf = tmp_path / "nodes.conf"
        conf.write_text("n=s\n")
        (tmp_path / "s.sh").write_text("#!/bin/sh\necho x=1\n")
        with pytest.raises(ConfigError) as caught:
            load_config(conf, scripts_dir=tmp_path, default_interval=15)
        assert caught.value.problems == [
            f"{conf}:1: script 's': {tmp_path / 's.sh'}:1: first line must be #!/bin/bash"
        ]

    def test_unreadable_config(self, tmp_path: Path) -> None:
        """A missing nodes.conf is one problem naming the file."""
        with pytest.raises(ConfigError) as caught:
            load_config(tmp_path / "nope.conf", scripts_dir=tmp_path, default_interval=15)
        assert caught.value.problems == [f"{tmp_path / 'nope.conf'}: cannot read: No such file or directory"]


class TestOtherNodesProblems:
    TEXT = "bupt-a=probe\nlab-*=probe,power_rail\nlab-3=power_rail\ngateway-7=default\n"

    @pytest.mark.parametrize(("node", "rejected"), [
        ("bupt-a", False),      # only other nodes' lines are broken
        ("gateway-7", False),
        ("lab-3", True),        # its own line names the missing script
        ("lab-9", True),        # the glob that applies to it does
        ("other", False),       # no line applies: default
    ])
    def test_a_problem_rejects_only_the_nodes_it_could_concern(self, tmp_path: Path, node: str,
                                                                rejected: bool) -> None:
        """A missing script stops only the nodes whose line (exact or glob) names it; the others load with the
        problems kept apart; a rejection still lists every problem."""
        conf = tmp_path / "nodes.conf"
        conf.write_text(self.TEXT)
        write_scripts(tmp_path, "probe")
        if rejected:
            with pytest.raises(ConfigError) as caught:
                load_config(conf, scripts_dir=tmp_path, default_interval=15, node=node)
            assert [p.split(": ", 1)[0] for p in caught.value.problems] == [f"{conf}:2", f"{conf}:3"]
            return
        config = load_config(conf, scripts_dir=tmp_path, default_interval=15, node=node)
        assert len(config.other_problems) == 2 and all("power_rail" in p for p in config.other_problems)

    def test_a_line_naming_no_node_concerns_every_node(self, tmp_path: Path) -> None:
        conf = tmp_path / "nodes.conf"
        conf.write_text("bupt-a=probe\nthis is not a line\n")
        write_scripts(tmp_path, "probe")
        with pytest.raises(ConfigError):
            load_config(conf, scripts_dir=tmp_path, default_interval=15, node="bupt-a")

    def test_without_a_node_every_problem_rejects(self, tmp_path: Path) -> None:
        """`check` (no node): every problem counts."""
        conf = tmp_path / "nodes.conf"
        conf.write_text(self.TEXT)
        write_scripts(tmp_path, "probe")
        with pytest.raises(ConfigError):
            load_config(conf, scripts_dir=tmp_path, default_interval=15)
