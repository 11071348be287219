from __future__ import annotations

import io
from pathlib import Path

from edge_metrics.cli import _build_parser, resolve_run
from edge_metrics.credentials import CredentialsWatch
from edge_metrics.log import Logger
from edge_metrics.render import render
from edge_metrics.selfmetrics import CollectorHealth, SelfMetrics


def watch(*files: Path) -> tuple[CredentialsWatch, io.StringIO]:
    stream = io.StringIO()
    return CredentialsWatch(files, Logger(stream=stream)), stream


def family_line(missing: bool | None) -> list[str]:
    health = CollectorHealth(node="n", write_failures=0, reload_successful=True, reload_success_timestamp=None,
                             write_timestamp=1.0, credentials_missing=missing)
    text = render([], SelfMetrics((), "n").blocks({}, health))
    return [line for line in text.splitlines() if line.startswith("edge_collector_node_credentials_missing")]


class TestCredentialsWatch:
    def test_missing_files_are_one_log_line_however_often_checked(self, tmp_path: Path) -> None:
        """A node without credentials says so once, naming each file and why, not at every write."""
        (tmp_path / "ca.crt").write_text("")
        credentials, log = watch(tmp_path / "token", tmp_path / "ca.crt")
        for _ in range(5):
            credentials.check()
        lines = log.getvalue().splitlines()
        assert len(lines) == 1, lines
        assert "WARNING node credentials missing" in lines[0]
        assert f"{tmp_path / 'token'} (No such file or directory)" in lines[0]
        assert f"{tmp_path / 'ca.crt'} (empty)" in lines[0]
        assert "tools/node-credentials.sh" in lines[0]
        assert credentials.missing is True

    def test_placed_files_are_one_more_line_and_clear_the_flag(self, tmp_path: Path) -> None:
        credentials, log = watch(tmp_path / "token", tmp_path / "ca.crt")
        credentials.check()
        (tmp_path / "token").write_text("t\n")
        (tmp_path / "ca.crt").write_text("c\n")
        credentials.check()
        credentials.check()
        lines = log.getvalue().splitlines()
        assert len(lines) == 2, lines
        assert "INFO node credentials in place" in lines[1]
        assert credentials.missing is False

    def test_present_from_the_start_logs_nothing(self, tmp_path: Path) -> None:
        (tmp_path / "token").write_text("t\n")
        credentials, log = watch(tmp_path / "token")
        credentials.check()
        assert log.getvalue() == ""
        assert credentials.missing is False

    def test_nothing_to_check_exports_nothing(self) -> None:
        credentials, log = watch()
        credentials.check()
        assert credentials.missing is None
        assert log.getvalue() == ""


class TestCredentialsFamily:
    def test_gauge_follows_the_watch(self) -> None:
        assert family_line(True) == ["edge_collector_node_credentials_missing 1"]
        assert family_line(False) == ["edge_collector_node_credentials_missing 0"]

    def test_absent_when_not_checked(self) -> None:
        """The textfile path without --credential-files (a board outside Kubernetes) has no such series."""
        assert family_line(None) == []


class TestOption:
    def test_env_lists_the_files(self) -> None:
        args = _build_parser().parse_args(["run", "--output", "-"])
        options = resolve_run(args, {"EDGE_CREDENTIAL_FILES": "/c/token, /c/ca.crt"})
        assert options.credential_files == (Path("/c/token"), Path("/c/ca.crt"))
        assert resolve_run(args, {}).credential_files == ()
