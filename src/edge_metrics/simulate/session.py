"""One simulator session: the compiled model and shared register state in a private directory, kept in
step with the YAML while the command runs, and the environment that puts the command under it."""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

from edge_metrics.simulate.compile import compile_model
from edge_metrics.simulate.library import REPO, LibraryError, library_path
from edge_metrics.simulate.model import Model, ModelError, load_model, source_stamp
from edge_metrics.textfile import WriteError, write_atomically

POLL_SECONDS = 0.05


class SetupError(Exception):
    """The simulator cannot run here (library not built, ...)."""


class Session:
    """Compiles `model_path` into a temporary directory and recompiles it whenever the file changes."""

    def __init__(self, model_path: Path) -> None:
        self.model_path = model_path
        self.directory = Path(tempfile.mkdtemp(prefix="edge-i2c-sim-"))
        self.compiled = self.directory / "model"
        self.state = self.directory / "state"
        self.state.touch()
        self._stamp = (0, 0, 0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_good: Model | None = None

    def __enter__(self) -> Session:
        try:
            self._compile(raise_errors=True)
        except BaseException:
            self.close()
            raise
        self._thread = threading.Thread(target=self._watch, name="model-watcher", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        shutil.rmtree(self.directory, ignore_errors=True)

    def _current_stamp(self) -> tuple[int, int, int]:
        st = os.stat(self.model_path)
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _compile(self, *, raise_errors: bool) -> None:
        try:
            self._stamp = self._current_stamp()
            stamp = source_stamp(self.model_path)
        except OSError as error:
            raise ModelError(f"{self.model_path}: cannot read model: {error.strerror}") from None
        try:
            model = load_model(self.model_path)
        except ModelError as error:
            if raise_errors or self._last_good is None:
                raise
            print(f"edge-metrics simulate: model not re-read, keeping the previous one:\n{error}", file=sys.stderr)
            # Same devices, new stamp: programs stop waiting for a recompile that will not come.
            write_atomically(self.compiled, compile_model(self._last_good, stamp))
            return
        self._reset_state()
        write_atomically(self.compiled, compile_model(model, stamp))
        self._last_good = model

    def _reset_state(self) -> None:
        """Written registers go back to the model's values when the model changes."""
        with open(self.state, "r+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.truncate(0)

    def _watch(self) -> None:
        reported = ""
        while not self._stop.wait(POLL_SECONDS):
            try:
                if self._current_stamp() != self._stamp:
                    self._compile(raise_errors=False)
                reported = ""
            except (OSError, ModelError, WriteError) as error:
                # Editors replace files in several steps; the next poll sees the finished file. A file
                # that stays away is reported once, not at every poll.
                message = f"edge-metrics simulate: cannot re-read the model, keeping the previous one: {error}"
                if message != reported:
                    print(message, file=sys.stderr)
                    reported = message


def child_environment(session: Session, base: dict[str, str]) -> dict[str, str]:
    """`base` plus the preload, and the i2c-tools from the checkout's cache when the system has none."""
    env = dict(base)
    try:
        preload = str(library_path())
    except LibraryError as error:
        raise SetupError(str(error)) from None
    env["LD_PRELOAD"] = f"{preload} {env['LD_PRELOAD']}" if env.get("LD_PRELOAD") else preload
    env["EDGE_I2C_SIM_MODEL"] = str(session.compiled)
    env["EDGE_I2C_SIM_STATE"] = str(session.state)
    if shutil.which("i2cget", path=env.get("PATH", os.defpath)) is None:
        tools = _cached_i2c_tools()
        if tools is None:
            # Not fatal: a Python program using smbus2 needs no i2c-tools; a script calling i2cget does.
            print("edge-metrics simulate: warning: i2c-tools are not installed (no i2cget on PATH): scripts that call "
                  "i2cget/i2cset will fail; install them (Debian: apt-get install i2c-tools)", file=sys.stderr)
            return env
        tools_dir, library_dir = tools
        env["PATH"] = os.pathsep.join(filter(None, [tools_dir, env.get("PATH", os.defpath)]))
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [library_dir, env.get("LD_LIBRARY_PATH")]))
    return env


def _cached_i2c_tools() -> tuple[str, str] | None:
    """(I2C_TOOLS_DIR, I2C_LIBRARY_PATH) from tools/fetch-components.sh's cache in this checkout."""
    env_file = REPO / ".cache" / "components" / "env"
    try:
        lines = env_file.read_text().splitlines()
    except OSError:
        return None
    values = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    tools, libs = values.get("I2C_TOOLS_DIR"), values.get("I2C_LIBRARY_PATH")
    if tools and libs and Path(tools, "i2cget").exists():
        return tools, libs
    return None
