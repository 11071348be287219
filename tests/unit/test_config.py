from __future__ import annotations

import time
from pathlib import Path

import pytest

from edge_metrics.config import (
    MAX_CONFIG_BYTES,
    MAX_PROBLEMS,
    MAX_SCRIPT_BYTES,
    MAX_SCRIPTS,
    ConfigError,
    NodesConfig,
    load_config,
    parse_config,
)
from tests.helpers import write_script

SCRIPT = "#!/bin/bash\necho x=1\n"  # what write_scripts writes


def write_scripts(directory: Path, *names: str) -> None:
    for name in names:
        write_script(directory, name, "echo x=1\n")


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

    def test_no_match_has_no_line(self, tmp_path: Path) -> None:
        """plan_for a node no line matches: no jobs and no line (load_config refuses such a node: TestEmptyPlan)."""
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
        assert problems[0].text.startswith("nodes.conf:2: ")
        assert reason in problems[0].text

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
        ("other", True),        # no line applies: a problem of its own, listed with the others
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
            unmatched = [str(conf)] if node == "other" else []
            assert [p.split(": ", 1)[0] for p in caught.value.problems] == [f"{conf}:2", f"{conf}:3", *unmatched]
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


def load_for(tmp_path: Path, text: str | bytes, node: str, *scripts: str) -> NodesConfig:
    conf = tmp_path / "nodes.conf"
    if isinstance(text, bytes):
        conf.write_bytes(text)
    else:
        conf.write_text(text)
    write_scripts(tmp_path, *scripts)
    return load_config(conf, scripts_dir=tmp_path, default_interval=15, node=node)


def rejection(tmp_path: Path, text: str | bytes, node: str, *scripts: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_for(tmp_path, text, node, *scripts)
    return caught.value.problems


class TestEmptyPlan:
    @pytest.mark.parametrize("text", ["", "\n\n", "# nothing yet\n  # indented\n"])
    def test_empty_or_comment_only_file_is_rejected(self, tmp_path: Path, text: str) -> None:
        """An empty or comment-only nodes.conf (a truncated update, a generator pointed at the wrong file) is
        rejected with the file named and the way to say "no scripts" on purpose, not loaded as no scripts."""
        problems = rejection(tmp_path, text, "bupt-a")
        assert problems == [f"{tmp_path / 'nodes.conf'}: no node lines (empty, or only comments): every node "
                            "would run no script; list the nodes, or write `*=default` if no node is meant to run one"]

    def test_a_node_no_line_selects_is_rejected_with_the_closest_names(self, tmp_path: Path) -> None:
        """A node whose line was renamed or misspelt would stop every reading silently: rejected, naming the
        closest lines and the fix."""
        problems = rejection(tmp_path, "bupt-aa=s:1s\ngateway-7=default\n", "bupt-a", "s")
        assert problems == [f"{tmp_path / 'nodes.conf'}: node 'bupt-a' matches no line (closest: bupt-aa), so it "
                            "would run no script and export no reading; add a line for it, or `bupt-a=default` (or "
                            "`*=default` as the last line) if it is meant to run none"]

    @pytest.mark.parametrize("text", ["gateway-7=default\n", "bupt-a=s\n*=default\n", "gate*=default\n"])
    def test_default_said_on_purpose_is_accepted(self, tmp_path: Path, text: str) -> None:
        """`NODE=default`, exact or through a glob, is an empty plan on purpose: accepted, with its line."""
        config = load_for(tmp_path, text, "gateway-7", "s")
        plan = config.plan_for("gateway-7")
        assert plan.jobs == () and plan.line is not None

    def test_the_bundled_config_is_accepted_for_its_nodes(self) -> None:
        """The documented seed file keeps loading for each node it lists."""
        bundled = Path(__file__).parents[2] / "scripts"
        for node in ("bupt-a", "edge-node-01", "gateway-7"):
            load_config(bundled / "nodes.conf", scripts_dir=bundled, default_interval=15, node=node)


class TestEncoding:
    @pytest.mark.parametrize("text", ["\ufeff# comment\nn1=s\n", "\ufeffn1=s\n"])
    def test_utf8_bom_is_stripped(self, tmp_path: Path, text: str) -> None:
        """A UTF-8 byte order mark (Windows editors) before a comment or a line is no content."""
        config = load_for(tmp_path, text.encode(), "n1", "s")
        assert [job.script for job in config.plan_for("n1").jobs] == ["s"]

    def test_crlf_nodes_conf_is_accepted_with_editor_line_numbers(self, tmp_path: Path) -> None:
        """CRLF line endings in nodes.conf are accepted; problems keep the line numbers an editor shows."""
        config = load_for(tmp_path, b"# c\r\nn1=s:10s\r\nn2=s\r\n", "n1", "s")
        assert [(job.script, job.interval) for job in config.plan_for("n1").jobs] == [("s", 10)]
        problems = rejection(tmp_path, b"# c\r\nn1=s:10x\r\n", "n1", "s")
        assert problems[0].startswith(f"{tmp_path / 'nodes.conf'}:2: ")

    def test_not_utf8_names_the_line(self, tmp_path: Path) -> None:
        problems = rejection(tmp_path, b"n1=s\n# caf\xe9\n", "n1", "s")
        assert problems == [f"{tmp_path / 'nodes.conf'}:2: cannot read: not UTF-8 text (invalid continuation byte)"]

    def test_crlf_script_is_refused_with_line_and_fix(self, tmp_path: Path) -> None:
        """A CRLF script (bash would fail with "unexpected end of file") is refused at load time, naming the file,
        the first CRLF line and the command that fixes it."""
        (tmp_path / "s.sh").write_bytes(b"#!/bin/bash\necho a=1\r\necho b=2\r\n")
        problems = rejection(tmp_path, "n1=s\n", "n1")
        script = tmp_path / "s.sh"
        assert problems == [
            f"{tmp_path / 'nodes.conf'}:1: script 's': {script}:2: Windows line endings (CRLF, 2 lines), which bash "
            f"misreads (\"unexpected end of file\", \"$'\\r': command not found\"); convert the file: "
            f"sed -i 's/\\r$//' {script} (or dos2unix {script})"
        ]

    @pytest.mark.parametrize(("content", "reason"), [
        (b"\x7fELF\x02\x01\x01\x00\x00", "1: a NUL byte: a binary file, not a bash script"),
        (b"#!/bin/bash\necho a=1\n\x00\x00", "3: a NUL byte: a binary file, not a bash script"),
        (b"\xef\xbb\xbf#!/bin/bash\necho a=1\n", "1: starts with a UTF-8 byte order mark"),
        (b"#!/bin/bash\r\necho a=1\n", "1: Windows line endings (CRLF, 1 lines)"),
        (b"#!/bin/bash\n" + b"#" * (1 << 20), " larger than 1 MiB"),
    ])
    def test_script_content_refused(self, tmp_path: Path, content: bytes, reason: str) -> None:
        """Content bash would not run as meant rejects the whole config, naming the script's file and line."""
        (tmp_path / "s.sh").write_bytes(content)
        problems = rejection(tmp_path, "n1=s\n", "n1")
        assert len(problems) == 1
        assert problems[0].startswith(f"{tmp_path / 'nodes.conf'}:1: script 's': {tmp_path / 's.sh'}:{reason}")

    def test_unreadable_script_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "s.sh").mkdir()
        problems = rejection(tmp_path, "n1=s\n", "n1")
        script = tmp_path / "s.sh"
        assert problems == [f"{tmp_path / 'nodes.conf'}:1: script 's': {script}: cannot read: Is a directory"]


class TestSnapshot:
    def test_the_plan_carries_the_content_read_at_load(self, tmp_path: Path) -> None:
        """The jobs hold the scripts' content as accepted; rewriting the file afterwards changes nothing."""
        (tmp_path / "t.sh").write_text("#!/bin/bash\necho t=1\n")
        config = load_for(tmp_path, "n1=s,t\n", "n1", "s")
        (tmp_path / "s.sh").write_text("#!/bin/sh\nrm -rf /\n")
        assert {job.script: job.content for job in config.plan_for("n1").jobs} == {
            "s": SCRIPT.encode(), "t": b"#!/bin/bash\necho t=1\n"}

    def test_a_configmap_volume_is_read_from_one_payload(self, tmp_path: Path) -> None:
        """nodes.conf and the scripts are read inside the payload `..data` points to, so a swap between two reads
        cannot pair one update's nodes.conf with another's scripts; messages still name the keys' paths."""
        payload = tmp_path / "..2026_11_25_17_00_01.1"
        payload.mkdir()
        (payload / "nodes.conf").write_text("n1=s\n")
        (payload / "s.sh").write_text(SCRIPT)
        (tmp_path / "..data").symlink_to(payload.name)
        # The per-key links already point to the next update, as between the kubelet's two steps.
        (tmp_path / "nodes.conf").write_text("n1=other\n")
        (tmp_path / "s.sh").write_text("#!/bin/bash\necho next=1\n")
        config = load_config(tmp_path / "nodes.conf", scripts_dir=tmp_path, default_interval=15, node="n1")
        [job] = config.plan_for("n1").jobs
        assert (job.script, job.content, job.path) == ("s", SCRIPT.encode(), tmp_path / "s.sh")


class TestBounds:
    def test_a_megabyte_of_lines_parses_in_linear_time(self) -> None:
        """A 1 MB nodes.conf of long lines (120 nodes listing 1000 scripts each) parses in well under a second:
        quadratic parsing of one long line hung the loop for over a minute. The bound is generous, for a loaded
        machine."""
        scripts = ",".join(f"s{number}:10s" for number in range(MAX_SCRIPTS))
        text = "".join(f"node-{node}={scripts}\n" for node in range(120))
        assert len(text) > 1_000_000
        started = time.monotonic()
        entries, problems = parse_config(text, source="nodes.conf", default_interval=15)
        elapsed = time.monotonic() - started
        assert problems == [] and [len(entry.scripts) for entry in entries] == [MAX_SCRIPTS] * 120
        assert elapsed < 5, f"{elapsed:.2f}s"

    def test_a_one_megabyte_line_is_refused_at_once(self, tmp_path: Path) -> None:
        """One 1 MB line listing 150,000 scripts, through the whole loader: one problem naming the line and why,
        without parsing each item or reading a file per name."""
        names = ",".join(f"s{number}:10s" for number in range(150_000))
        started = time.monotonic()
        problems = rejection(tmp_path, f"# generated\nn1={names}\n", "n1", "s1")
        elapsed = time.monotonic() - started
        assert problems == [f"{tmp_path / 'nodes.conf'}:2: lists 150000 scripts, more than the {MAX_SCRIPTS} one "
                            "config may have (a generated line gone wrong?)"]
        assert elapsed < 5, f"{elapsed:.2f}s"

    def test_too_many_different_scripts_in_all_are_refused_unread(self, tmp_path: Path) -> None:
        """Lines within the bound that together name too many scripts: one problem, no file read per name."""
        text = "".join(f"n{line}=" + ",".join(f"s{line}_{item}" for item in range(500)) + "\n" for line in range(3))
        problems = rejection(tmp_path, text, "n1")
        assert problems == [f"{tmp_path / 'nodes.conf'}: names 1500 different scripts, more than the {MAX_SCRIPTS} "
                            "one config may have: not a nodes.conf (a generated line gone wrong?)"]

    def test_many_problems_end_with_a_count(self, tmp_path: Path) -> None:
        """A file with hundreds of missing scripts: the first problems one by one, then the count of the others."""
        names = ",".join(f"s{number}" for number in range(MAX_SCRIPTS))
        problems = rejection(tmp_path, f"n1={names}\n", "n1", "s1")
        assert len(problems) == MAX_PROBLEMS + 1
        assert problems[-1] == f"... and {MAX_SCRIPTS - 1 - MAX_PROBLEMS} more problems"

    def test_scripts_too_large_in_all_are_refused(self, tmp_path: Path) -> None:
        """Scripts each within the bound but together beyond what is read at one load: the first one past it, and
        every one after, is a problem."""
        body = b"#!/bin/bash\n" + b"#" * (MAX_SCRIPT_BYTES - 100) + b"\n"
        for number in range(9):
            (tmp_path / f"s{number}.sh").write_bytes(body)
        problems = rejection(tmp_path, "n1=" + ",".join(f"s{number}" for number in range(9)) + "\n", "n1")
        assert problems == [f"{tmp_path / 'nodes.conf'}:1: script 's8': {tmp_path / 's8.sh'}: the scripts named total "
                            "more than 8 MiB"]

    def test_an_absurdly_large_file_is_refused_unread(self, tmp_path: Path) -> None:
        problems = rejection(tmp_path, "#" * (MAX_CONFIG_BYTES + 1), "n1")
        assert problems == [f"{tmp_path / 'nodes.conf'}: larger than 4 MiB (a ConfigMap holds at most 1 MiB): "
                            "not a nodes.conf"]
