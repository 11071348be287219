"""`edge-metrics simulate --model FILE -- COMMAND [ARGS...]`: run a command against simulated I2C devices.

The real programs (i2cget, i2cset, i2cdump, i2cdetect, i2ctransfer, smbus2) run unmodified; a preloaded
library (sim/, built by `make sim` or at first use by library.py) serves /dev/i2c-N from the model. This
process stays as the command's parent to re-read the model when it changes; the command's exit code is passed
through.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from edge_metrics.simulate.model import ModelError, load_model
from edge_metrics.simulate.session import Session, SetupError, child_environment

USAGE = "usage: edge-metrics simulate --model FILE [--check] -- COMMAND [ARGS...]"
HELP = f"""{USAGE}

Run COMMAND, and everything it starts, with simulated I2C buses described by the YAML model FILE: the
real i2cget/i2cset/i2cdump/i2cdetect/i2ctransfer and smbus2 see /dev/i2c-N as on the board. The model
is re-read when FILE changes. The exit code is COMMAND's.

  --model FILE   the device model
  --check        only validate FILE: print its buses and devices, exit 1 on errors

example model (bus 0, an HDC1080 at 0x40 whose big-endian word register 0x00 holds 0x6000):
  buses:
    0:
      devices:
        0x40:
          name: hdc1080
          registers:
            0x00: {{size: word, order: big, value: 0x6000}}

example:
  edge-metrics simulate --model model.yaml -- i2cget -y 0 0x40 0x00 w
  edge-metrics simulate --model model.yaml -- edge-metrics run --once --output - --node-name bupt-a

The preload library is built at first use into $XDG_CACHE_HOME/edge-metrics (needs a C compiler;
EDGE_I2C_SIM_LIB names a ready one). Values (sequences, ramps, sine waves), faults (absent, nack,
delay, hung bus) and writable registers: docs/simulator.md in the project's source repository.
"""


class _Usage(Exception):
    pass


def main(argv: Sequence[str]) -> int:
    try:
        model_text, check, command = _parse(list(argv))
    except _Usage as error:
        print(f"edge-metrics simulate: error: {error}", file=sys.stderr)
        return 2
    if model_text is None:  # --help
        print(HELP, end="")
        return 0
    model_path = Path(model_text)
    try:
        if check:
            return _check(model_path)
        with Session(model_path) as session:
            env = child_environment(session, dict(os.environ))
            return _run(command, env)
    except ModelError as error:
        print(error, file=sys.stderr)
        return 1
    except SetupError as error:
        print(f"edge-metrics simulate: error: {error}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as error:
        if error.name != "yaml":
            raise
        print("edge-metrics simulate: error: the simulator needs PyYAML:"
              " pip install 'edge-metrics-collector[simulate]'", file=sys.stderr)
        return 1


def _parse(argv: list[str]) -> tuple[str | None, bool, list[str]]:
    model: str | None = None
    check = False
    while argv:
        arg = argv.pop(0)
        if arg == "--":
            break
        if arg in ("-h", "--help"):
            return None, False, []
        if arg == "--check":
            check = True
        elif arg == "--model" or arg.startswith("--model="):
            if arg == "--model" and not argv:
                raise _Usage("--model needs a FILE")
            given = argv.pop(0) if arg == "--model" else arg.partition("=")[2]
            if model is not None:
                # One model per run: a second --model used to replace the first without a word.
                raise _Usage(f"--model given twice ({model}, {given}): one model per run, with every bus in it")
            model = given
        elif arg.startswith("-"):
            raise _Usage(f"unknown option {arg} ({USAGE})")
        else:
            argv.insert(0, arg)
            break
    if not model:
        raise _Usage(f"--model FILE is required ({USAGE})")
    if not check and not argv:
        raise _Usage(f"no COMMAND given ({USAGE})")
    if check and argv:
        raise _Usage("--check takes no COMMAND")
    return model, check, argv


def _check(path: Path) -> int:
    model = load_model(path)
    for bus in model.buses:
        state = " (hung)" if bus.hung else ""
        print(f"bus {bus.number}{state}: {len(bus.devices)} device(s)")
        for dev in bus.devices:
            notes = [note for note, on in (("absent", dev.absent), (f"nack {dev.nack:g}", dev.nack > 0),
                                           (f"delay {dev.delay_us / 1000:g}ms", dev.delay_us > 0)) if on]
            extra = f" [{', '.join(notes)}]" if notes else ""
            what = f"{len(dev.registers)} register(s)" if dev.chip is None else \
                f"chip model {dev.chip.type}" + (f", fault {dev.chip.fault}" if dev.chip.fault else "")
            print(f"  {dev.address:#04x} {dev.name or '-'}: {what}{extra}")
    return 0


def _run(command: list[str], env: dict[str, str]) -> int:
    try:
        child = subprocess.Popen(command, env=env)
    except OSError as error:
        print(f"edge-metrics simulate: error: cannot run {command[0]}: {error.strerror}", file=sys.stderr)
        return 127 if isinstance(error, FileNotFoundError) else 126

    def forward(signum: int, _frame: FrameType | None) -> None:
        # The command decides how to stop (the collector finishes its file); we exit when it does.
        if child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code if code >= 0 else 128 - code
