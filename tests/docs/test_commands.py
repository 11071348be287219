"""Every shell block of README.md and docs/*.md runs as written.

The convention (README, "Development"): a block fenced as ```sh is commands a reader types; the test runs it
with bash (-e, -o pipefail) from a temporary copy of the checkout that shares the checkout's .venv, .cache and
build/. A block that cannot run here says why in its info string: ```sh no-run: needs a Kubernetes cluster.
Blocks in other languages (```bash script fragments, ```yaml, nodes.conf examples) are not commands."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.helpers import REPO

FENCE = re.compile(r"^( *)```([^\n]*)\n(.*?)^\1```[ \t]*$", re.S | re.M)  # also indented, in a list item
SHARED = (".venv", ".cache", "build")  # what `make` set up: shared with the copy, not rebuilt
NOT_COPIED = {".git", *SHARED, ".run", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
COMMAND_START = re.compile(r"^(make|\.venv/|edge-metrics|kubectl|tools/|bash|curl|docker)\b")


class Block(NamedTuple):
    doc: str
    line: int
    info: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def no_run_reason(self) -> str | None:
        _, marker, reason = self.info.partition("no-run:")
        return reason.strip() if marker else None


def blocks() -> list[Block]:
    found = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = path.read_text()
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            body = textwrap.dedent(match.group(3))
            found.append(Block(str(path.relative_to(REPO)), line, match.group(2).strip(), body))
    return found


SHELL = [block for block in blocks() if block.info.split(" ", 1)[0] == "sh"]
TO_RUN = [block for block in SHELL if block.no_run_reason is None]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the checkout (mtimes kept, so make sees its targets up to date) sharing .venv, .cache, build."""
    for name in SHARED:
        assert (REPO / name).exists(), f"{name} missing: run `make venv components sim` (make test does)"
    copy = tmp_path_factory.mktemp("docs") / "checkout"
    shutil.copytree(REPO, copy, symlinks=True, ignore=lambda _dir, names: [n for n in names if n in NOT_COPIED])
    for name in SHARED:
        (copy / name).symlink_to(REPO / name)
    yield copy


class TestConvention:
    def test_there_are_blocks_to_run(self) -> None:
        assert len(TO_RUN) >= 3, [b.where for b in SHELL]

    def test_every_not_run_block_says_why(self) -> None:
        unexplained = [block.where for block in SHELL if block.no_run_reason == ""]
        assert not unexplained, f"```sh no-run: needs a reason: {unexplained}"

    def test_commands_are_fenced_as_sh(self) -> None:
        """A block of commands fenced without `sh` would escape the test: untagged blocks hold no commands."""
        untagged = [block.where for block in blocks() if block.info in ("", "shell", "console")
                    and any(COMMAND_START.match(line) for line in block.text.splitlines())]
        assert not untagged, f"fence these command blocks as ```sh (or ```sh no-run: reason): {untagged}"


@pytest.mark.parametrize("block", TO_RUN, ids=[block.where for block in TO_RUN])
def test_block_runs_as_written(block: Block, checkout: Path) -> None:
    """The block, as a reader would paste it into bash at the top of a fresh checkout, exits 0."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("EDGE_", "VIRTUAL_ENV")) and key != "NODE_NAME"}
    # Its own process group: whatever the block starts is killed with it, also when it hangs.
    proc = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", block.text], cwd=checkout, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == 0, (
        f"{block.where} exited {proc.returncode}\n--- block\n{block.text}--- stdout\n{stdout[-2000:]}"
        f"--- stderr\n{stderr[-3000:]}")
