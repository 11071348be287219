"""Command line: options (each also from an environment variable, for the DaemonSet) and logging setup.

The only module that turns errors into exit codes: 0 ok, 1 a script or the config failed, 2 bad usage.
An option's value comes from the command line, else its environment variable, else its default, and is
checked the same way whichever it came from (OPTIONS below: one line per option).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from edge_metrics import __version__
from edge_metrics.durations import DurationError, parse_duration
from edge_metrics.runner import DEFAULT_MAX_SERIES, SET_FOR_SCRIPTS

BUNDLED_DIR = (Path(__file__).resolve().parent / "bundled").resolve()
DEFAULT_OUTPUT = "/var/lib/prometheus/node-exporter/custom_metrics.prom"  # Debian node_exporter's textfile dir
SELF_METRIC_PREFIX = "edge_collector_"
_PREFIX_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")


class UsageError(Exception):
    """Bad options; reported as one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def __init__(self, **kwargs: object) -> None:
        # `--onc` must not run as `--once`: no abbreviations, here and in every subcommand.
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


# -- checks: text -> value, or ValueError with the reason -----------------------------------------------------

def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except DurationError as error:
        raise ValueError(str(error)) from None


def _choice(*choices: str) -> Callable[[str], str]:
    def check(text: str) -> str:
        if text not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text

    return check


def _prefix(text: str) -> str:
    if text and (set(text) - _PREFIX_CHARS or text[0].isdigit()):
        raise ValueError(f"{text!r} is not a valid metric name prefix")
    if text.startswith(SELF_METRIC_PREFIX):
        raise ValueError(f"{text!r}: {SELF_METRIC_PREFIX}* is reserved for the collector's own metrics, "
                         "every reading would be rejected")
    return text


def _file(text: str) -> Path:
    if not os.path.isfile(text):
        raise ValueError(f"{text} is not a file")
    return Path(text)


def _directory(text: str) -> Path:
    if not os.path.isdir(text):
        raise ValueError(f"{text} is not a directory")
    return Path(text)


def _output_path(text: str) -> str:
    if text == "-":
        return text
    if os.path.lexists(text) and not os.path.isfile(text):
        # The file is replaced by rename: as root, `--output /dev/null` would replace the device with a file.
        raise ValueError(f"{text} exists and is not a regular file")
    directory = os.path.dirname(text) or "."
    if not os.path.isdir(directory):
        # Nothing is created outside what the user named: a typo must not make a new directory tree as root.
        raise ValueError(f"directory {directory} does not exist (create it, or point it at node_exporter's "
                         "textfile directory)")
    return text


def _max_series(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise ValueError(f"{text!r} is not a positive whole number")
    return int(text)


def _variable_names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    for name in names:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"{name!r} is not an environment variable name")
        if name in SET_FOR_SCRIPTS:
            raise ValueError(f"{name} is set by the collector itself")
    return names


def _push_url(text: str) -> str:
    from edge_metrics.httppost import parse_url

    parse_url(text)
    return text


def _listen(text: str) -> str:
    from edge_metrics.metricsendpoint import parse_listen

    parse_listen(text)
    return text


def _size(text: str) -> int:
    from edge_metrics.spool import parse_size

    return parse_size(text)


def _spool_dir(text: str) -> str:
    if os.path.lexists(text) and not os.path.isdir(text):
        raise ValueError(f"{text} exists and is not a directory")
    return text


TYPE_CHECKING = False  # `typing` for the type checker only: the collector process never imports it (see log.py)
if TYPE_CHECKING:
    from typing import NamedTuple

    from edge_metrics.log import Logger
    from edge_metrics.push import PushSettings

    class Option(NamedTuple):
        """An option of `run`/`check`, its environment variable, its default (None: none) and its check."""

        flag: str
        env: str
        default: str | None
        check: Callable[[str], object]
        metavar: str
        help: str
        commands: tuple[str, ...] = ("run",)
else:
    Option = namedtuple("Option", "flag env default check metavar help commands", defaults=(("run",),))


OPTIONS = (
    Option("--config", "EDGE_CONFIG", None, _file, "FILE", "nodes.conf (default: the bundled scripts/nodes.conf)",
           ("run", "check")),
    Option("--scripts-dir", "EDGE_SCRIPTS_DIR", None, _directory, "DIR",
           "directory of the <script>.sh files (default: the directory of --config)", ("run", "check")),
    Option("--default-interval", "EDGE_DEFAULT_INTERVAL", "15s", _duration, "DURATION",
           "interval of a script listed without one; heartbeat of an idle node", ("run", "check")),
    Option("--output", "EDGE_OUTPUT", DEFAULT_OUTPUT, _output_path, "PATH",
           "metrics file in node_exporter's textfile directory (the directory must exist), or - for stdout "
           "with --once"),
    Option("--metric-prefix", "EDGE_METRIC_PREFIX", "edge_", _prefix, "PREFIX", "prefix of script metrics"),
    Option("--timeout", "EDGE_SCRIPT_TIMEOUT", "10s", _duration, "DURATION",
           "a script's time limit; its whole process group is killed"),
    Option("--log-format", "EDGE_LOG_FORMAT", "text", _choice(*LOG_FORMATS), "|".join(LOG_FORMATS),
           "log line format"),
    Option("--log-level", "EDGE_LOG_LEVEL", "info", _choice(*LOG_LEVELS), "|".join(LOG_LEVELS),
           "least severe level logged (a run is shown at info on a terminal, at debug otherwise)"),
    Option("--max-series", "EDGE_MAX_SERIES", str(DEFAULT_MAX_SERIES), _max_series, "N",
           "series one script may export, the first in output order; the rest are dropped and counted"),
    Option("--script-env", "EDGE_SCRIPT_ENV", "", _variable_names, "NAME[,NAME...]",
           "variables of this environment passed on to scripts (default: none beyond the documented set)"),
    Option("--push-url", "EDGE_PUSH_URL", None, _push_url, "URL",
           "push mode: send readings with their own time to this vmagent import URL, e.g. "
           "http://127.0.0.1:8429/api/v1/import/prometheus (default: the textfile carries the readings)"),
    Option("--spool-dir", "EDGE_SPOOL_DIR", None, _spool_dir, "DIR",
           "push mode: keep unsent readings here across restarts (default: in memory)"),
    Option("--spool-max-bytes", "EDGE_SPOOL_MAX_BYTES", "64MiB", _size, "SIZE",
           "push mode: spool bound; the oldest readings go first"),
    Option("--clock-check", "EDGE_CLOCK_CHECK", "adjtimex", _choice("adjtimex", "none"), "adjtimex|none",
           "push mode holds readings while adjtimex says the clock is unsynchronised; none trusts the clock"),
    Option("--metrics-listen", "EDGE_METRICS_LISTEN", None, _listen, "HOST:PORT",
           "also serve the metrics file at http://HOST:PORT/metrics (loopback only) for the node's vmagent, "
           "where no node_exporter reads the textfile (default: off)"),
)

_PATH_CHECKS = (_file, _directory, _output_path)

RUN_DESCRIPTION = """\
Run this node's scripts on their schedule. With --push-url (as the DaemonSet runs it), each run's
readings go to the node's vmagent stamped with the time they were read, and the file that
node_exporter's textfile collector serves carries the collector's own health metrics; without it, the
file carries the readings too. SIGTERM/SIGINT stop it; SIGHUP reloads nodes.conf (changes are also
picked up on their own within a second).

Each option can also come from the environment variable named in its help; the command line wins.

examples:
  edge-metrics run --once --output - --node-name bupt-a       try the node's scripts, print the file
  edge-metrics run --node-name bupt-a --output /var/lib/prometheus/node-exporter/custom_metrics.prom
  NODE_NAME=bupt-a EDGE_PUSH_URL=http://127.0.0.1:8429/api/v1/import/prometheus edge-metrics run
                                                              as the DaemonSet runs it (push mode)

exit status: 0 ok, 1 a script failed (--once) or the config is invalid, 2 bad usage."""

CHECK_DESCRIPTION = """\
Validate nodes.conf and every script it names (existence, #!/bin/bash first line, bash -n), report
every problem at once as FILE:LINE: reason, and print the plan of every node (or of --node-name).
Run it in CI before `kubectl apply`; --configmap checks what the cluster will see.

examples:
  edge-metrics check --config scripts/nodes.conf
  edge-metrics check --config scripts/nodes.conf --node-name lab-3
  kubectl kustomize deploy/kubernetes > rendered.yaml && edge-metrics check --configmap rendered.yaml

exit status: 0 valid, 1 problems found, 2 bad usage."""


def entry_point() -> None:
    sys.exit(main(sys.argv[1:]))


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    if argv[:1] == ["simulate"]:
        # The simulator is a development tool with its own options; the collector never imports it.
        from edge_metrics.simulate import main as simulate_main

        return simulate_main(argv[1:])
    if argv[:1] == ["gate"]:
        # The centre's per-node gate (docs/security.md): its own options; the collector never imports it.
        from edge_metrics.gatecli import main as gate_main

        return gate_main(argv[1:])
    try:
        args = _build_parser().parse_args(argv)
        if args.command is None:
            raise UsageError("a command is required: run, check or simulate (see edge-metrics --help)")
        values = resolve(args, os.environ)
        if args.command == "run":
            return _run(args, values)
        return _check(args, values)
    except UsageError as error:
        print(f"edge-metrics: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="edge-metrics",
        description="Hardware readings from bash scripts -> Prometheus gauges, pushed to the node's vmagent with their "
                    "read time, or written to node_exporter's textfile directory.",
        epilog="See `edge-metrics COMMAND --help`; the README describes nodes.conf and the script contract.",
    )
    version = f"edge-metrics {__version__}"
    parser.add_argument("--version", action="version", version=version)
    commands = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="{run,check,simulate,gate}")
    run = commands.add_parser("run", help="run the node's scripts on schedule; push the readings or write the file",
                              description=RUN_DESCRIPTION)
    # Listed for --help only: main() hands `simulate` to the simulator before this parser runs.
    commands.add_parser("simulate", add_help=False,
                        help="run a command under the I2C simulator (edge-metrics simulate --help)")
    commands.add_parser("gate", add_help=False, help="the centre's per-node gate (edge-metrics gate --help)")
    check = commands.add_parser("check", help="validate nodes.conf and its scripts; print the plan",
                                description=CHECK_DESCRIPTION)
    subs = {"run": run, "check": check}
    for option in OPTIONS:
        for name in option.commands:
            default = f"; default {option.default}" if option.default is not None else ""
            subs[name].add_argument(option.flag, metavar=option.metavar, default=None,
                                    help=f"{option.help} (env {option.env}{default})")
    run.add_argument("--node-name", metavar="NAME", help="this node (env NODE_NAME; default: the hostname)")
    run.add_argument("--once", action="store_true",
                     help="run each script once, write, exit 0 if all succeeded and 1 otherwise")
    check.add_argument("--node-name", metavar="NAME",
                       help="print only this node's plan (env NODE_NAME; default: every node of nodes.conf)")
    check.add_argument("--configmap", metavar="FILE",
                       help="check the ConfigMap holding nodes.conf in this rendered manifest (kubectl kustomize "
                            "output or all-in-one.yaml) instead of --config: what the cluster will see")
    for sub in subs.values():
        sub.add_argument("--version", action="version", version=version)
    return parser


def resolve(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, object]:
    """Every option of the command: command line, else environment, else default; each checked alike."""
    values: dict[str, object] = {}
    # Plain values before paths: a bad value is the error shown even where a default path is missing.
    for option in sorted(OPTIONS, key=lambda option: option.check in _PATH_CHECKS):
        if args.command not in option.commands:
            continue
        given = getattr(args, _dest(option.flag))
        source = option.flag
        if given is None and environ.get(option.env):
            given, source = environ[option.env], f"{option.env} ({option.flag})"
        if given is None:
            given = option.default
        if given is None:
            values[option.flag] = None
            continue
        try:
            values[option.flag] = option.check(given)
        except ValueError as error:
            raise UsageError(f"{source}: {error}") from None
    values["--node-name"] = args.node_name or environ.get("NODE_NAME") or None
    return values


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _paths(values: dict[str, object]) -> tuple[Path, Path]:
    config = values["--config"]
    if not isinstance(config, Path):
        config = shown_path(BUNDLED_DIR / "nodes.conf")
    scripts = values["--scripts-dir"]
    return config, scripts if isinstance(scripts, Path) else config.parent


def shown_path(path: Path) -> Path:
    """`scripts/nodes.conf` for the bundled default seen from a checkout, rather than the package's path."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def _output(values: dict[str, object], once: bool) -> Path | None:
    output = str(values["--output"])
    if output != "-":
        return Path(output)
    if not once:
        raise UsageError("--output -: printing to stdout needs --once")
    return None


def _run(args: argparse.Namespace, values: dict[str, object]) -> int:
    from edge_metrics.daemon import serve
    from edge_metrics.log import Logger
    from edge_metrics.node import Collector, Settings
    from edge_metrics.runner import RunLimits

    config, scripts = _paths(values)
    output = _output(values, args.once)
    bash = _which("bash")
    if bash is None:
        raise UsageError("bash not found on PATH")
    settings = Settings(
        config_path=config,
        scripts_dir=scripts,
        node=str(values["--node-name"] or os.uname().nodename),
        output=output,
        prefix=str(values["--metric-prefix"]),
        default_interval=float(values["--default-interval"]),  # type: ignore[arg-type]
        limits=RunLimits(timeout=float(values["--timeout"]),  # type: ignore[arg-type]
                         max_series=int(values["--max-series"])),  # type: ignore[call-overload]
        bash=bash,
        script_env=values["--script-env"],  # type: ignore[arg-type]
        push=_push_settings(values),
        trust_unsynchronized_clock=values["--clock-check"] == "none",
    )
    log = Logger(level=str(values["--log-level"]), json_format=values["--log-format"] == "json",
                 progress=_is_terminal(sys.stderr))
    collector = Collector(settings, log)
    loaded = collector.load()
    if args.once:
        return collector.run_once() if loaded else 1
    if values["--metrics-listen"]:
        _serve_metrics(str(values["--metrics-listen"]), output, log)
    return serve(collector)


def _serve_metrics(listen: str, output: Path | None, log: Logger) -> None:
    """--metrics-listen: the file the collector writes, served by a thread of its own (metricsendpoint.py)."""
    from edge_metrics.metricsendpoint import ListenError, start

    if output is None:
        raise UsageError("--metrics-listen serves the --output file: it needs a file, not -")
    try:
        start(listen, output.read_bytes, log)
    except ListenError as error:
        raise UsageError(f"--metrics-listen: {error}") from None


def _push_settings(values: dict[str, object]) -> PushSettings | None:
    from edge_metrics.push import PushSettings

    if not values["--push-url"]:
        return None
    spool = values["--spool-dir"]
    return PushSettings(str(values["--push-url"]), str(spool) if spool else None,
                        int(values["--spool-max-bytes"]))  # type: ignore[call-overload]


def _check(args: argparse.Namespace, values: dict[str, object]) -> int:
    from edge_metrics.check import check_config, check_configmap

    node = values["--node-name"]
    interval = float(values["--default-interval"])  # type: ignore[arg-type]
    if args.configmap is not None:
        if values["--config"] is not None or values["--scripts-dir"] is not None:
            raise UsageError("--configmap: checks the ConfigMap's nodes.conf and scripts; drop --config/--scripts-dir")
        return check_configmap(Path(args.configmap), default_interval=interval, node=_str(node),
                               out=sys.stdout, err=sys.stderr)
    config, scripts = _paths(values)
    return check_config(
        config,
        scripts_dir=scripts,
        default_interval=interval,
        node=_str(node),
        out=sys.stdout,
        err=sys.stderr,
    )


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _is_terminal(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False


def _which(program: str) -> str | None:
    # shutil.which would do, at the cost of importing shutil and its dependencies into a long-lived process.
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or ".", program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None
