"""The node's credentials for the centre (its bearer token, the CA of the centre's certificate): there or not.

The node's vmagent reads them from files on the node (tools/make-certs.sh: nodes/<node>/) at every attempt to write,
so a node whose files are missing still starts, keeps every reading in its disk queue and delivers them once the
files appear, without a restart (docs/kubernetes.md). What vmagent does not do is say so once: it logs a warning per
retry. The collector, whose log is the one the runbooks read first, looks at the same files (--credential-files):
one line when they go missing, one when they are back, and edge_collector_node_credentials_missing between.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from edge_metrics.log import Logger

PLACE_THEM = "tools/node-credentials.sh, docs/kubernetes.md"


class CredentialsWatch:
    """Whether the files the node's vmagent needs are there and not empty; logs each change once."""

    def __init__(self, files: tuple[Path, ...], log: Logger, *,
                 stat: Callable[[Path], os.stat_result] = os.stat) -> None:
        self.files = files
        self.log = log
        self.stat = stat
        self.problems: tuple[str, ...] = ()  # "PATH (reason)" of each file missing, empty or unreadable
        self.checked = False

    @property
    def missing(self) -> bool | None:
        """None: nothing to check (no --credential-files), or not checked yet."""
        return bool(self.problems) if self.files and self.checked else None

    def check(self) -> None:
        if not self.files:
            return
        problems = tuple(f"{path} ({reason})" for path in self.files if (reason := self._problem(path)) is not None)
        if problems and problems != self.problems:
            self.log.warning("node credentials missing: the node's vmagent keeps every reading in its disk queue and "
                             f"delivers them once the files are in place ({PLACE_THEM})", files=", ".join(problems))
        elif not problems and self.problems:
            self.log.info("node credentials in place: the node's vmagent delivers what it queued",
                          files=", ".join(str(path) for path in self.files))
        self.problems = problems
        self.checked = True

    def _problem(self, path: Path) -> str | None:
        try:
            size = self.stat(path).st_size
        except OSError as error:
            return error.strerror or type(error).__name__
        return "empty" if size == 0 else None
