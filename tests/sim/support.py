"""Running real programs under the I2C simulator, and finding any that outlive a test."""

from __future__ import annotations

import os
import subprocess
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edge_metrics.simulate.session import Session, child_environment
from tests.helpers import REPO, Processes

SPACE_SERVER = REPO / "scripts" / "space_server.sh"
SPACE_SERVER_MODEL = REPO / "scripts" / "models" / "space_server.yaml"
JETSON_NANO = REPO / "scripts" / "jetson_nano.sh"
JETSON_SYSFS = Path(__file__).parent / "fixtures" / "jetson_sysfs"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def lines(self) -> list[str]:
        return self.out.splitlines()

    def readings(self) -> dict[str, float]:
        """key=value lines of a collector script, as numbers."""
        values: dict[str, float] = {}
        for line in self.lines():
            key, _, value = line.rpartition("=")
            values[key] = float(value)
        return values


def run(procs: Processes, argv: Sequence[str | os.PathLike[str]], *, env: Mapping[str, str] | None = None,
        timeout: float = 20) -> Result:
    """Run argv to completion in its own process group (killed at teardown if the test fails)."""
    proc = procs.start(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=timeout)
    return Result(proc.returncode, out.decode(), err.decode())


def write_model(path: Path, yaml_text: str) -> Path:
    path.write_text(textwrap.dedent(yaml_text))
    return path


class Simulator:
    """A simulator session driven from the test process: the same Session `edge-metrics simulate` uses,
    without starting a Python interpreter per program."""

    def __init__(self, procs: Processes, session: Session, model: Path) -> None:
        self.procs = procs
        self.session = session
        self.model = model
        self.env = child_environment(session, dict(os.environ))

    def run(self, *argv: str | os.PathLike[str], timeout: float = 20, **extra_env: str) -> Result:
        return run(self.procs, argv, env={**self.env, **extra_env}, timeout=timeout)

    def sh(self, command: str, timeout: float = 20, **extra_env: str) -> Result:
        return self.run("bash", "-c", command, timeout=timeout, **extra_env)

    def rewrite(self, yaml_text: str) -> None:
        write_model(self.model, yaml_text)

    def processes_left(self) -> list[str]:
        return processes_with_env(self.session.compiled.as_posix())


@contextmanager
def simulator(procs: Processes, model: Path) -> Iterator[Simulator]:
    with Session(model) as session:
        yield Simulator(procs, session, model)


def processes_with_env(marker: str) -> list[str]:
    """Command lines of live processes whose environment mentions marker (a session's model path):
    whatever the simulator started and did not end."""
    found: list[str] = []
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes():
                continue
            status = (entry / "stat").read_text()
            if status.rsplit(")", 1)[1].split()[0] == "Z":
                continue  # a zombie holds no resources; its parent reaps it
            found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue  # ended while we looked
    return found
