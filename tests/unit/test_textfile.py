from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from edge_metrics.textfile import WriteError, remove_stale_temp_files, temp_path, write_atomically


class TestWriteAtomically:
    def test_replaces_the_file_with_mode_0644(self, tmp_path: Path) -> None:
        """The target gets the new content, world-readable for node_exporter, whatever the umask."""
        target = tmp_path / "custom_metrics.prom"
        target.write_text("old\n")
        old_umask = os.umask(0o077)
        try:
            write_atomically(target, "new\n")
        finally:
            os.umask(old_umask)
        assert target.read_text() == "new\n"
        assert stat.S_IMODE(target.stat().st_mode) == 0o644
        assert sorted(p.name for p in tmp_path.iterdir()) == ["custom_metrics.prom"]

    def test_temp_name_is_ignored_by_node_exporter(self, tmp_path: Path) -> None:
        """The temp file never ends in .prom, so node_exporter never reads it."""
        name = temp_path(tmp_path / "custom_metrics.prom").name
        assert name == f"custom_metrics.prom.tmp.{os.getpid()}"
        assert not name.endswith(".prom")

    def test_does_not_follow_a_planted_symlink(self, tmp_path: Path) -> None:
        """A symlink at the temp path is not written through."""
        victim = tmp_path / "victim"
        victim.write_text("precious")
        target = tmp_path / "custom_metrics.prom"
        temp_path(target).symlink_to(victim)
        write_atomically(target, "new\n")
        assert victim.read_text() == "precious"
        assert target.read_text() == "new\n"

    def test_failure_keeps_the_old_file(self, tmp_path: Path) -> None:
        """When the directory is not writable the old file stays and the error names the path."""
        if os.geteuid() == 0:
            # root ignores directory permissions: make the rename fail instead, with a directory in the way.
            target = tmp_path / "custom_metrics.prom"
            target.mkdir()
            (target / "keep").write_text("x")
            with pytest.raises(WriteError, match=r"custom_metrics\.prom"):
                write_atomically(target, "new\n")
            assert (target / "keep").read_text() == "x"
            assert not temp_path(target).exists()
            return
        target = tmp_path / "custom_metrics.prom"
        target.write_text("old\n")
        tmp_path.chmod(0o555)
        try:
            with pytest.raises(WriteError):
                write_atomically(target, "new\n")
        finally:
            tmp_path.chmod(0o755)
        assert target.read_text() == "old\n"

    def test_missing_directory(self, tmp_path: Path) -> None:
        """A missing directory is a WriteError, not a crash."""
        with pytest.raises(WriteError, match="No such file or directory"):
            write_atomically(tmp_path / "nope" / "custom_metrics.prom", "x\n")


class TestStaleTempFiles:
    def test_removes_only_our_temp_files(self, tmp_path: Path) -> None:
        """Temp files of a killed collector go; other files in the textfile directory stay."""
        target = tmp_path / "custom_metrics.prom"
        stale = [tmp_path / "custom_metrics.prom.tmp.12345", tmp_path / "custom_metrics.prom.tmp.1"]
        keep = [tmp_path / "custom_metrics.prom", tmp_path / "other.prom", tmp_path / "other.prom.tmp.5"]
        for path in stale + keep:
            path.write_text("x")
        removed = remove_stale_temp_files(target)
        assert sorted(removed) == sorted(stale)
        assert sorted(tmp_path.iterdir()) == sorted(keep)
