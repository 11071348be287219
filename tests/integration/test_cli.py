"""The command line as a user meets it: `run --once`, `check`, bad usage, environment variables, logs."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import EDGE_METRICS, REPO, parse_exposition, write_script
from tests.integration.support import LOG_LINE, Setup, clean_env, make_setup, read_metrics, run_once, value


def edge_metrics(*argv: str | Path, env: dict[str, str] | None = None, timeout: float = 30
                 ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EDGE_METRICS), *(str(a) for a in argv)], env=env if env is not None else clean_env(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False)


class TestRunOnce:
    def test_exit_0_when_every_script_succeeds(self, tmp_path: Path) -> None:
        """--once runs each script of the node once, writes the file and exits 0."""
        setup = make_setup(tmp_path, "node-1=one:1h,two:1h\n", {"one": "echo a=1\n", "two": "echo b=2\n"})
        result = run_once(setup)
        assert result.returncode == 0, result.stderr
        samples = read_metrics(setup.output)
        assert value(samples, "edge_a") == 1 and value(samples, "edge_b") == 2
        assert value(samples, "edge_collector_script_runs_total", script="one") == 1
        assert value(samples, "edge_collector_script_runs_total", script="two") == 1

    @pytest.mark.parametrize("failing", ["exit 4", "sleep 30"], ids=["exit-code", "timeout"])
    def test_exit_1_when_a_script_fails(self, tmp_path: Path, failing: str) -> None:
        """A script that exits non-zero or times out makes --once exit 1; the other script is still exported."""
        setup = make_setup(tmp_path, "node-1=good,bad\n", {"good": "echo a=1\n", "bad": f"echo b=2\n{failing}\n"})
        result = run_once(setup, "--timeout", "500ms")
        assert result.returncode == 1
        samples = read_metrics(setup.output)
        assert value(samples, "edge_a") == 1 and value(samples, "edge_b") == 2
        assert value(samples, "edge_collector_script_success", script="good") == 1
        assert value(samples, "edge_collector_script_success", script="bad") == 0

    def test_output_dash_prints_the_exposition(self, tmp_path: Path) -> None:
        """`--output -` prints the file to stdout (trying a script on a host) and writes nothing; logs stay on
        stderr."""
        setup = make_setup(tmp_path, "node-1=probe\n", {"probe": "echo 'temperature{zone=\"cpu\"}=45.2'\n"})
        result = edge_metrics("run", "--once", "--config", setup.config, "--node-name", "node-1", "--output", "-")
        assert result.returncode == 0, result.stderr
        samples = parse_exposition(result.stdout)
        assert value(samples, "edge_temperature", zone="cpu") == 45.2
        assert value(samples, "edge_collector_info", node="node-1", version="0.1.0") == 1
        assert all(LOG_LINE.match(line) for line in result.stderr.splitlines())
        assert list(setup.output.parent.iterdir()) == []

    def test_output_dash_into_a_closed_pipe(self, tmp_path: Path) -> None:
        """`--output - | head -0`-style: the reader has gone; one error line, exit 1, no traceback."""
        setup = make_setup(tmp_path, "node-1=probe\n", {"probe": "echo v=1\n"})
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            result = subprocess.run(
                [str(EDGE_METRICS), "run", "--once", "--config", str(setup.config), "--node-name", "node-1",
                 "--output", "-"], env=clean_env(), stdin=subprocess.DEVNULL, stdout=write_end,
                stderr=subprocess.PIPE, text=True, timeout=30, check=False)
        finally:
            os.close(write_end)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
        assert len(errors) == 1 and "stdout" in errors[0], result.stderr


class TestCheck:
    def test_prints_the_plan(self, tmp_path: Path) -> None:
        """A valid config: exit 0 and one line per node with its scripts and intervals, or only --node-name's."""
        setup = make_setup(tmp_path, """
            # comment
            bupt-a=space_server:10s
            edge-*=jetson_nano:30s,power_rail   # glob
            gateway-7=default
            """, {"space_server": "echo a=1\n", "jetson_nano": "echo b=1\n", "power_rail": "echo c=1\n"})
        result = edge_metrics("check", "--config", setup.config, "--default-interval", "1m")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            f"bupt-a: space_server every 10s  [{setup.config}:2]",
            f"edge-*: jetson_nano every 30s, power_rail every 1m  [{setup.config}:3]",
            f"gateway-7: default (no scripts)  [{setup.config}:4]",
        ]
        one = edge_metrics("check", "--config", setup.config, "--node-name", "edge-42")
        assert one.returncode == 0
        assert one.stdout == f"edge-42: jetson_nano every 30s, power_rail every 15s  [{setup.config}:3 (edge-*)]\n"

    def test_reports_every_problem_with_file_and_line(self, tmp_path: Path) -> None:
        """Every problem at once, each as `file:line: reason`, and exit 1."""
        setup = make_setup(tmp_path, """
            bupt-a=space_server:10s
            bupt-a=space_server:20s
            edge-1=../../bin/evil
            edge-2=space_server:-3s
            edge-3=missing:10s
            this line has no equals sign
            edge-4=noshebang
            """, {"space_server": "echo a=1\n"})
        (setup.conf_dir / "noshebang.sh").write_text("echo a=1\n")
        result = edge_metrics("check", "--config", setup.config)
        assert result.returncode == 1
        errors = result.stderr.splitlines()
        config = setup.config
        for line, reason in [(2, "duplicate entry"), (3, "invalid script name"), (4, "space_server"),
                             (5, "missing.sh does not exist"), (6, "expected NODE=SCRIPT"),
                             (7, "first line must be #!/bin/bash")]:
            assert any(e.startswith(f"{config}:{line}: ") and reason in e for e in errors), (line, reason, errors)
        assert len(errors) == 6, errors
        assert "Traceback" not in result.stderr

    def test_bash_syntax_errors_point_at_the_script_line(self, tmp_path: Path) -> None:
        """`check` runs `bash -n` on each script and reports `script.sh:LINE: reason`."""
        setup = make_setup(tmp_path, "node-1=broken\n", {"broken": "echo a=1\nif then\n"})
        result = edge_metrics("check", "--config", setup.config)
        assert result.returncode == 1
        script = setup.conf_dir / "broken.sh"
        assert any(line.startswith(f"{script}:3: ") and "syntax error" in line
                   for line in result.stderr.splitlines()), result.stderr


class TestBadUsage:
    @pytest.mark.parametrize("argv", [
        ["run", "--bogus"],
        ["run", "--timeout", "soon"],
        ["run", "--timeout", "0s"],
        ["run", "--default-interval", "-5s"],
        ["run", "--output", "-"],
        ["run", "--once", "--output", "/dev/null"],
        ["run", "--once", "--output", "/tmp"],
        ["run", "--config", "/nonexistent/nodes.conf"],
        ["run", "--scripts-dir", "/nonexistent"],
        ["run", "--log-format", "xml"],
        ["run", "--log-level", "chatty"],
        ["run", "--metric-prefix", "9x"],
        ["check", "--config", "/nonexistent/nodes.conf"],
        ["frobnicate"],
        [],
    ])
    def test_one_line_exit_2(self, argv: list[str]) -> None:
        """Bad usage: one line on stderr, nothing on stdout, exit 2, no traceback (and nothing started)."""
        result = edge_metrics(*argv, timeout=10)
        assert result.returncode == 2, result
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""

    def test_bad_env_value_is_bad_usage(self) -> None:
        """A bad value from the DaemonSet's environment is reported like a bad option."""
        result = edge_metrics("run", "--once", env=clean_env(EDGE_SCRIPT_TIMEOUT="ten seconds"))
        assert result.returncode == 2
        assert len(result.stderr.splitlines()) == 1 and "--timeout" in result.stderr


class TestEnvironment:
    def test_every_option_from_its_environment_variable(self, tmp_path: Path) -> None:
        """EDGE_CONFIG, EDGE_SCRIPTS_DIR, NODE_NAME, EDGE_OUTPUT, EDGE_METRIC_PREFIX, EDGE_DEFAULT_INTERVAL and
        EDGE_SCRIPT_TIMEOUT each take effect with no option on the command line."""
        config_dir, scripts_dir = tmp_path / "config", tmp_path / "scripts"
        config_dir.mkdir()
        scripts_dir.mkdir()
        (config_dir / "nodes.conf").write_text("rack-1=reading,slow:1m\nrack-2=default\n")
        write_script(scripts_dir, "reading", "echo value=3\necho budget=$EDGE_SCRIPT_TIMEOUT\n")
        write_script(scripts_dir, "slow", "sleep 30\n")
        output = tmp_path / "out" / "metrics.prom"
        output.parent.mkdir()
        env = clean_env(EDGE_CONFIG=str(config_dir / "nodes.conf"), EDGE_SCRIPTS_DIR=str(scripts_dir),
                        NODE_NAME="rack-1", EDGE_OUTPUT=str(output), EDGE_METRIC_PREFIX="hw_",
                        EDGE_DEFAULT_INTERVAL="7s", EDGE_SCRIPT_TIMEOUT="1500ms")
        started = time.monotonic()
        result = edge_metrics("run", "--once", env=env)
        took = time.monotonic() - started
        assert result.returncode == 1, result.stderr  # `slow` timed out
        samples = read_metrics(output)  # EDGE_OUTPUT
        assert value(samples, "hw_value") == 3  # EDGE_CONFIG + EDGE_SCRIPTS_DIR + EDGE_METRIC_PREFIX
        assert value(samples, "edge_value") is None
        assert value(samples, "edge_collector_info", node="rack-1", version="0.1.0") == 1  # NODE_NAME
        assert value(samples, "edge_collector_script_interval_seconds", script="reading") == 7  # DEFAULT_INTERVAL
        assert value(samples, "edge_collector_script_interval_seconds", script="slow") == 60
        assert value(samples, "hw_budget") == 1.5  # EDGE_SCRIPT_TIMEOUT, handed to the script in seconds
        assert value(samples, "edge_collector_script_timeouts_total", script="slow") == 1
        assert took < 6, f"--once took {took:.1f}s with a 1.5 s timeout"

    def test_log_format_and_level_from_the_environment(self, tmp_path: Path) -> None:
        """EDGE_LOG_FORMAT=json makes every stderr line a JSON object; EDGE_LOG_LEVEL=debug adds the successful
        runs, EDGE_LOG_LEVEL=error keeps only errors."""
        setup = make_setup(tmp_path, "node-1=ok,bad\n", {"ok": "echo a=1\n", "bad": "exit 2\n"})
        chatty = run_once(setup, env={"EDGE_LOG_FORMAT": "json", "EDGE_LOG_LEVEL": "debug"})
        records = [json.loads(line) for line in chatty.stderr.splitlines()]
        assert records and all({"time", "level", "msg"} <= record.keys() for record in records)
        assert {"debug", "info", "error"} <= {record["level"] for record in records}
        assert any(r["level"] == "debug" and r.get("script") == "ok" for r in records)
        assert any(r["level"] == "error" and r.get("script") == "bad" and r.get("exit_code") == 2 for r in records)

        quiet = run_once(setup, env={"EDGE_LOG_LEVEL": "error"})
        levels = {line.split()[1] for line in quiet.stderr.splitlines()}
        assert levels == {"ERROR"}, quiet.stderr

    def test_what_a_script_gets(self, tmp_path: Path) -> None:
        """Scripts get NODE_NAME, EDGE_SCRIPT_TIMEOUT in seconds, LC_ALL=C, stdin /dev/null and the variables
        listed in --script-env, and run without the execute bit."""
        setup = make_setup(tmp_path, "node-1=env\n", {"env": """
            [ "$NODE_NAME" = node-1 ] && echo node_name_ok=1
            echo timeout_seconds=$EDGE_SCRIPT_TIMEOUT
            [ "$LC_ALL" = C ] && echo lc_all_c=1
            [ "$(readlink /proc/self/fd/0)" = /dev/null ] && echo stdin_devnull=1
            echo decimal=$(printf '%.2f' 2.50)
            echo inherited=$SITE_CALIBRATION
            """})
        result = run_once(setup, "--timeout", "2500ms", "--script-env", "SITE_CALIBRATION",
                          env={"SITE_CALIBRATION": "0.25", "LC_ALL": "de_DE.UTF-8"})
        assert result.returncode == 0, result.stderr
        samples = read_metrics(setup.output)
        assert {name: v for (name, _), v in samples.items() if not name.startswith("edge_collector_")} == {
            "edge_node_name_ok": 1, "edge_timeout_seconds": 2.5, "edge_lc_all_c": 1, "edge_stdin_devnull": 1,
            "edge_decimal": 2.5, "edge_inherited": 0.25,
        }


class TestLogs:
    def test_local_time_with_offset_honours_tz(self, tmp_path: Path) -> None:
        """TZ=Asia/Shanghai: every log line carries the local time with +08:00, in text and JSON."""
        setup = make_setup(tmp_path, "node-1=bad\n", {"bad": "exit 1\n"})
        before = datetime.now(UTC)
        text = run_once(setup, env={"TZ": "Asia/Shanghai"})
        json_run = run_once(setup, "--log-format", "json", env={"TZ": "Asia/Shanghai"})
        after = datetime.now(UTC)
        stamps = [line.split()[0] for line in text.stderr.splitlines()]
        stamps += [json.loads(line)["time"] for line in json_run.stderr.splitlines()]
        assert len(stamps) >= 4
        for stamp in stamps:
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00", stamp), stamp
            when = datetime.fromisoformat(stamp)
            assert before - timedelta(seconds=1) <= when <= after + timedelta(seconds=1), (stamp, before)

    def test_startup_line_names_node_scripts_intervals_output(self, tmp_path: Path) -> None:
        """The line `kubectl logs --tail=10` must show: node, scripts with intervals, output path."""
        setup = make_setup(tmp_path, "node-*=alpha:10s,beta:1m30s\n", {"alpha": "echo a=1\n", "beta": "echo b=1\n"})
        result = run_once(setup)
        loaded = [line for line in result.stderr.splitlines() if "config loaded" in line]
        assert len(loaded) == 1
        line = loaded[0]
        assert " INFO " in line and "node=node-1" in line and "scripts=alpha:10s,beta:1m30s" in line
        assert f"output={setup.output}" in line
        assert "script ran" not in result.stderr, "successful runs log only at debug level"


class TestEnvironmentValidation:
    @pytest.mark.parametrize(("variable", "bad", "flag"), [
        ("EDGE_LOG_LEVEL", "verbose", "--log-level"),
        ("EDGE_LOG_FORMAT", "yaml", "--log-format"),
        ("EDGE_METRIC_PREFIX", "edge_collector_", "--metric-prefix"),
        ("EDGE_METRIC_PREFIX", "9x", "--metric-prefix"),
        ("EDGE_DEFAULT_INTERVAL", "-5s", "--default-interval"),
        ("EDGE_SCRIPT_TIMEOUT", "0s", "--timeout"),
        ("EDGE_CONFIG", "/nonexistent/nodes.conf", "--config"),
        ("EDGE_SCRIPTS_DIR", "/nonexistent", "--scripts-dir"),
        ("EDGE_OUTPUT", "/nonexistent/textfile/m.prom", "--output"),
    ])
    def test_bad_env_value_is_one_line_exit_2(self, tmp_path: Path, variable: str, bad: str, flag: str) -> None:
        """Every environment variable is checked like its flag: one line naming the variable and the flag,
        exit 2, no traceback, nothing run or written; the same value on the command line is refused alike."""
        setup = make_setup(tmp_path, "node-1=probe\n", {"probe": "echo v=1\n"})
        paths = {"EDGE_CONFIG": str(setup.config), "EDGE_OUTPUT": str(setup.output)}
        from_env = edge_metrics("run", "--once", "--node-name", "node-1", env=clean_env(**{**paths, variable: bad}))
        assert from_env.returncode == 2, from_env.stderr
        assert len(from_env.stderr.splitlines()) == 1, from_env.stderr
        assert variable in from_env.stderr and flag in from_env.stderr and "Traceback" not in from_env.stderr
        assert not setup.output.exists()
        from_flag = run_once(setup, f"{flag}={bad}")
        assert from_flag.returncode == 2 and len(from_flag.stderr.splitlines()) == 1, from_flag.stderr

    def test_the_command_line_wins_over_the_environment(self, tmp_path: Path) -> None:
        """A good flag overrides the variable: the variable's value is then not used (nor refused)."""
        setup = make_setup(tmp_path, "node-1=probe\n", {"probe": "echo v=1\n"})
        result = run_once(setup, "--log-level", "error", env={"EDGE_LOG_LEVEL": "verbose"})
        assert result.returncode == 0, result.stderr


class TestNothingImplicit:
    @pytest.mark.parametrize("abbreviated", [["run", "--onc"], ["run", "--once", "--out", "-"],
                                             ["check", "--conf", "scripts/nodes.conf"]])
    def test_abbreviated_options_are_refused(self, tmp_path: Path, abbreviated: list[str]) -> None:
        """`--onc` is not `--once`: an abbreviation is an unknown option, one line, exit 2, nothing written."""
        result = edge_metrics(*abbreviated, env=clean_env(NODE_NAME="bupt-a", EDGE_OUTPUT=str(tmp_path / "m.prom")))
        assert result.returncode == 2, result
        assert "unrecognized arguments" in result.stderr and len(result.stderr.splitlines()) == 1
        assert list(tmp_path.iterdir()) == []

    def test_a_missing_output_directory_is_refused_not_created(self, tmp_path: Path) -> None:
        """A missing output directory: one line naming it, exit 2, and no directory appears."""
        setup = make_setup(tmp_path, "node-1=probe\n", {"probe": "echo v=1\n"})
        missing = tmp_path / "no" / "such" / "dir"
        result = run_once(setup, "--output", str(missing / "custom_metrics.prom"))
        assert result.returncode == 2
        assert result.stderr.splitlines() == [result.stderr.strip()] and str(missing) in result.stderr
        assert "does not exist" in result.stderr
        assert not (tmp_path / "no").exists()


class TestCheckGaps:
    def test_empty_nodes_conf_is_a_problem(self, tmp_path: Path) -> None:
        """A nodes.conf with only comments: check says every node would run nothing and how to say so on purpose,
        exit 1 (the collector rejects it the same way)."""
        setup = make_setup(tmp_path, "# nothing yet\n\n", {})
        result = edge_metrics("check", "--config", setup.config)
        assert result.returncode == 1
        assert result.stderr == (f"{setup.config}: no node lines (empty, or only comments): every node would run no "
                                 "script; list the nodes, or write `*=default` if no node is meant to run one\n")

    def test_a_node_matching_no_line_is_named_with_the_closest(self, tmp_path: Path) -> None:
        """`check --node-name bupt-aa`: a node no line selects is a problem, as for the collector, naming the closest
        lines and how to give it no script on purpose; exit 1."""
        setup = make_setup(tmp_path, "bupt-a=probe\nedge-*=probe\ngateway-7=default\n", {"probe": "echo v=1\n"})
        result = edge_metrics("check", "--config", setup.config, "--node-name", "bupt-aa")
        assert result.returncode == 1, result.stderr
        assert result.stdout == ""
        assert result.stderr.splitlines() == [
            f"{setup.config}: node 'bupt-aa' matches no line (closest: bupt-a), so it would run no script and export "
            "no reading; add a line for it, or `bupt-aa=default` (or `*=default` as the last line) if it is meant to "
            "run none"]

    def test_a_crlf_script_is_named_with_its_fix_in_check_and_configmap_check(self, tmp_path: Path) -> None:
        """A script saved with Windows line endings: `check` and `check --configmap` name the file, the line and
        the command that fixes it (the rules of the collector's loader), not bash's "unexpected end of file"."""
        import yaml

        setup = make_setup(tmp_path, "node-1=alpha\n", {})
        script = setup.conf_dir / "alpha.sh"
        script.write_bytes(b"#!/bin/bash\nif true; then\r\n  echo v=1\r\nfi\r\n")
        result = edge_metrics("check", "--config", setup.config)
        assert result.returncode == 1
        assert result.stderr.splitlines() == [
            f"{setup.config}:1: script 'alpha': {script}:2: Windows line endings (CRLF, 3 lines), which bash misreads "
            f"(\"unexpected end of file\", \"$'\\r': command not found\"); convert the file: "
            f"sed -i 's/\\r$//' {script} (or dos2unix {script})"]

        manifest = tmp_path / "rendered.yaml"
        manifest.write_text(yaml.safe_dump({"kind": "ConfigMap", "metadata": {"name": "edge-metrics-config"},
                                            "data": {"nodes.conf": "node-1=alpha\n",
                                                     "alpha.sh": script.read_bytes().decode()}}))
        cluster = edge_metrics("check", "--configmap", manifest)
        assert cluster.returncode == 1
        where = f"{manifest}:ConfigMap/edge-metrics-config"
        assert cluster.stderr.startswith(f"{where}/nodes.conf:1: script 'alpha': {where}/alpha.sh:2: Windows line "
                                         "endings"), cluster.stderr

    def test_a_bom_and_crlf_nodes_conf_passes(self, tmp_path: Path) -> None:
        """nodes.conf saved by a Windows editor (UTF-8 BOM, CRLF): accepted, the plan as written."""
        setup = make_setup(tmp_path, "", {"probe": "echo v=1\n"})
        setup.config.write_bytes("\ufeff# from Windows\r\nnode-1=probe:10s\r\n".encode())
        result = edge_metrics("check", "--config", setup.config)
        assert (result.returncode, result.stderr) == (0, "")
        assert result.stdout == f"node-1: probe every 10s  [{setup.config}:2]\n"

    def test_bash_syntax_errors_reported_with_the_other_problems(self, tmp_path: Path) -> None:
        """All problems at once: a missing script (with a did-you-mean) does not hide another script's
        `bash -n` error."""
        setup = make_setup(tmp_path, "node-1=broken\nnode-2=space_sever\n",
                           {"broken": "echo a=1\nif then\n", "space_server": "echo b=1\n"})
        result = edge_metrics("check", "--config", setup.config)
        assert result.returncode == 1
        errors = result.stderr.splitlines()
        assert any(line.startswith(f"{setup.conf_dir / 'broken.sh'}:3: ") and "syntax error" in line
                   for line in errors), errors
        assert any(line.startswith(f"{setup.config}:2: script 'space_sever': ") and
                   line.endswith("does not exist (did you mean 'space_server'?)") for line in errors), errors

    def test_check_help_states_the_real_defaults(self) -> None:
        """`check --help`: --node-name defaults to every node (not the hostname); a description and examples."""
        result = edge_metrics("check", "--help")
        assert result.returncode == 0
        text = " ".join(result.stdout.split())
        assert "default: every node of nodes.conf" in text and "the hostname" not in text
        assert "examples:" in result.stdout and "edge-metrics check --config scripts/nodes.conf" in result.stdout

    def test_bundled_default_is_shown_as_scripts_nodes_conf(self) -> None:
        """Run from the checkout, the plan of the bundled default names scripts/nodes.conf, not the package's
        bundled symlink."""
        result = subprocess.run([str(EDGE_METRICS), "check", "--node-name", "bupt-a"], cwd=REPO, env=clean_env(),
                                capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 0, result.stderr
        assert re.fullmatch(r"bupt-a: space_server every 10s  \[scripts/nodes\.conf:\d+\]\n", result.stdout)


class TestOtherNodesProblems:
    def test_another_nodes_missing_script_does_not_stop_this_node(self, tmp_path: Path) -> None:
        """lab-3's script is missing: node-1 still runs and writes, the problem is logged once as a warning
        naming the line, and edge_collector_config_other_nodes_problems says 1. node-1's own problem still
        rejects the config."""
        setup = make_setup(tmp_path, "node-1=probe\nlab-3=probe,power_rail:1m\n", {"probe": "echo v=1\n"})
        result = run_once(setup)
        assert result.returncode == 0, result.stderr
        samples = read_metrics(setup.output)
        assert value(samples, "edge_v") == 1
        assert value(samples, "edge_collector_config_other_nodes_problems") == 1
        assert value(samples, "edge_collector_config_last_reload_successful") == 1
        warnings = [line for line in result.stderr.splitlines() if " WARNING " in line and "nodes.conf" in line]
        assert len(warnings) == 1 and f"{setup.config}:2: script 'power_rail'" in warnings[0], result.stderr

        own = make_setup(tmp_path / "own", "node-1=probe,power_rail\n", {"probe": "echo v=1\n"})
        rejected = run_once(own)
        assert rejected.returncode == 1
        assert any(" ERROR " in line and "power_rail" in line for line in rejected.stderr.splitlines())


class TestTerminalOutput:
    def run_on_terminal(self, setup: Setup, *extra: str) -> str:
        """`run --once` with stderr on a pseudo-terminal, as when a person types it; what the terminal shows."""
        main_fd, terminal_fd = pty.openpty()
        try:
            proc = subprocess.Popen(setup.argv("--once", *extra), env=clean_env(), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=terminal_fd)
            os.close(terminal_fd)
            chunks = []
            while True:
                try:
                    chunk = os.read(main_fd, 65536)
                except OSError:  # EIO: the collector exited and closed the terminal
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            proc.wait(timeout=30)
        finally:
            os.close(main_fd)
        return b"".join(chunks).decode(errors="replace")

    def test_each_run_and_the_written_file_are_shown_on_a_terminal(self, tmp_path: Path) -> None:
        """On a terminal, each successful run is one INFO line and a summary says where the file went;
        in a pod (stderr not a terminal) the successful runs stay at debug."""
        setup = make_setup(tmp_path, "node-1=alpha,beta\n", {"alpha": "echo a=1\n", "beta": "echo b=1\necho c=2\n"})
        shown = self.run_on_terminal(setup).splitlines()
        ran = [line for line in shown if " INFO script ran " in line]
        assert len(ran) == 2 and "script=alpha" in ran[0] and "samples=2" in ran[1], shown
        written = [line for line in shown if "metrics file written" in line]
        assert len(written) == 1 and f"path={setup.output}" in written[0], shown
        assert "scripts=alpha:15s,beta:15s" in written[0]

        in_a_pod = run_once(setup)
        assert "script ran" not in in_a_pod.stderr

    def test_invalid_lines_beyond_five_are_visible_at_debug(self, tmp_path: Path) -> None:
        """Eight invalid lines: five warnings and a summary at info level; all eight at debug."""
        setup = make_setup(tmp_path, "node-1=noisy\n", {"noisy": "for i in 1 2 3 4 5 6 7 8; do echo bad$i; done\n"})
        quiet = run_once(setup)
        assert len([line for line in quiet.stderr.splitlines() if "invalid line" in line and "text=" in line]) == 5
        assert "more logged at debug level" in quiet.stderr
        chatty = run_once(setup, "--log-level", "debug")
        texts = [line for line in chatty.stderr.splitlines() if "invalid line" in line and "text=" in line]
        assert [f"text=bad{i}" in line for i, line in enumerate(texts, start=1)] == [True] * 8, texts

    def test_a_long_first_stderr_line_does_not_hide_the_next(self, tmp_path: Path) -> None:
        """A failing script whose first stderr line is 5000 characters: the log line stays short and still
        shows the second line (the actual reason)."""
        setup = make_setup(tmp_path, "node-1=dump\n",
                           {"dump": "printf '%05000d\\n' 0 >&2\necho 'i2cget: read failed' >&2\nexit 3\n"})
        result = run_once(setup)
        failed = [line for line in result.stderr.splitlines() if "script failed" in line]
        assert len(failed) == 1 and "i2cget: read failed" in failed[0] and len(failed[0]) < 600, failed


class TestHelpAndVersion:
    @pytest.mark.parametrize("argv", [["--version"], ["run", "--version"], ["check", "--version"]])
    def test_version(self, argv: list[str]) -> None:
        """`--version` works on the program and on each command."""
        result = edge_metrics(*argv)
        assert result.returncode == 0 and result.stdout == "edge-metrics 0.1.0\n", result

    def test_run_help_has_a_description_examples_and_env_defaults(self) -> None:
        result = edge_metrics("run", "--help")
        text = " ".join(result.stdout.split())
        assert "examples:" in result.stdout and "edge-metrics run --once --output - --node-name bupt-a" in text
        for variable, default in [("EDGE_LOG_LEVEL", "info"), ("EDGE_SCRIPT_TIMEOUT", "10s"),
                                  ("EDGE_METRIC_PREFIX", "edge_"), ("EDGE_DEFAULT_INTERVAL", "15s")]:
            assert f"env {variable}; default {default})" in text, variable

    def test_simulate_help_points_at_nothing_the_package_lacks(self) -> None:
        """`simulate --help` explains the model with an example instead of naming a doc the package lacks."""
        result = edge_metrics("simulate", "--help")
        assert result.returncode == 0
        assert "docs/simulator.md" not in result.stdout or "source" in result.stdout
        assert "buses:" in result.stdout and "example" in result.stdout.lower()


class TestProjectFiles:
    def test_license_and_changelog(self) -> None:
        """LICENSE holds the Apache-2.0 text pyproject names; CHANGELOG.md lists the releases."""
        license_text = (REPO / "LICENSE").read_text()
        assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
        assert 'license = { text = "Apache-2.0" }' in (REPO / "pyproject.toml").read_text()
        changelog = (REPO / "CHANGELOG.md").read_text()
        assert changelog.startswith("# Changelog") and "## [0.1.0]" in changelog
