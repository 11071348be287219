from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from edge_metrics.textfile import WriteError, remove_stale_temp_files, temp_prefix, write_atomically


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
        """The temp file never ends in .prom, so node_exporter never reads it; its name starts with the pid and
        ends with a random part."""
        prefix = temp_prefix(tmp_path / "custom_metrics.prom")
        assert prefix == f"{tmp_path}/custom_metrics.prom.tmp.{os.getpid()}."
        assert not prefix.endswith(".prom")

    @pytest.mark.parametrize("kind", ["directory", "fifo", "symlink", "dangling-symlink", "file"])
    def test_nothing_at_a_temp_name_blocks_writing(self, tmp_path: Path, kind: str) -> None:
        """A directory, FIFO or symlink at the old fixed temp name (`.tmp.<pid>`, always `.tmp.1` in a container)
        and at many names of the new pattern never stops a write, and is never written through or removed."""
        target = tmp_path / "custom_metrics.prom"
        victim = tmp_path / "victim"
        victim.write_text("precious")
        blockers = [tmp_path / f"custom_metrics.prom.tmp.{os.getpid()}", tmp_path / "custom_metrics.prom.tmp.1",
                    *(tmp_path / f"{temp_prefix(target)}{i:012x}" for i in range(50))]
        for path in blockers:
            if kind == "directory":
                path.mkdir()
            elif kind == "fifo":
                os.mkfifo(path)
            elif kind == "symlink":
                path.symlink_to(victim)
            elif kind == "dangling-symlink":
                path.symlink_to(tmp_path / "nowhere")
            else:
                path.write_text("someone else's")
        for round_ in range(20):
            write_atomically(target, f"new {round_}\n")
            assert target.read_text() == f"new {round_}\n"
        assert victim.read_text() == "precious"
        assert not (tmp_path / "nowhere").exists()
        left = sorted(p for p in tmp_path.iterdir() if p not in (target, victim))
        assert left == sorted(blockers), "something was removed, or a temp file of ours was left"

    def test_does_not_follow_a_planted_symlink(self, tmp_path: Path) -> None:
        """Symlinks planted at every temp name of the old pattern are not written through."""
        victim = tmp_path / "victim"
        victim.write_text("precious")
        target = tmp_path / "custom_metrics.prom"
        (tmp_path / f"custom_metrics.prom.tmp.{os.getpid()}").symlink_to(victim)
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
            assert [p.name for p in tmp_path.iterdir()] == ["custom_metrics.prom"], "a temp file was left"
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
        """Temp files of a killed collector (old and new name patterns) go; other files in the textfile directory
        stay."""
        target = tmp_path / "custom_metrics.prom"
        stale = [tmp_path / "custom_metrics.prom.tmp.12345", tmp_path / "custom_metrics.prom.tmp.1",
                 tmp_path / "custom_metrics.prom.tmp.1.0123456789ab"]
        keep = [tmp_path / "custom_metrics.prom", tmp_path / "other.prom", tmp_path / "other.prom.tmp.5"]
        for path in stale + keep:
            path.write_text("x")
        removed, foreign = remove_stale_temp_files(target)
        assert sorted(removed) == sorted(stale)
        assert foreign == []
        assert sorted(tmp_path.iterdir()) == sorted(keep)

    def test_leaves_and_reports_what_is_not_a_regular_file(self, tmp_path: Path) -> None:
        """A directory, FIFO or symlink with a temp file's name was not made by a collector: it is reported and
        left alone (a symlink's target is untouched)."""
        target = tmp_path / "custom_metrics.prom"
        victim = tmp_path / "victim"
        victim.write_text("precious")
        directory = tmp_path / "custom_metrics.prom.tmp.1"
        directory.mkdir()
        (directory / "inside").write_text("x")
        fifo = tmp_path / "custom_metrics.prom.tmp.2.abcdef012345"
        os.mkfifo(fifo)
        link = tmp_path / "custom_metrics.prom.tmp.3"
        link.symlink_to(victim)
        removed, foreign = remove_stale_temp_files(target)
        assert removed == []
        assert sorted(foreign) == sorted([directory, fifo, link])
        assert (directory / "inside").exists() and stat.S_ISFIFO(fifo.lstat().st_mode) and link.is_symlink()
        assert victim.read_text() == "precious"
