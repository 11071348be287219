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
from edge_metrics.samples import Value
from edge_metrics.selfmetrics import PREFIX as SELF_METRIC_PREFIX

BUNDLED_DIR = (Path(__file__).resolve().parent / "bundled").resolve()
DEFAULT_OUTPUT = "/var/lib/prometheus/node-exporter/custom_metrics.prom"  # Debian node_exporter's textfile dir
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


def _credential_files(text: str) -> tuple[Path, ...]:
    # Not required to exist: saying that they are missing is what the option is for (credentials.py).
    return tuple(Path(name.strip()) for name in text.split(",") if name.strip())


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
    from typing import Final, Generic, NamedTuple, TextIO, TypeVar

    from edge_metrics.log import Logger
    from edge_metrics.push import PushSettings

    T = TypeVar("T")

    class Option(NamedTuple, Generic[T]):
        """An option of `run`/`check`, its environment variable, its default (None: none) and its check, which
        gives the option's value its type."""

        flag: str
        env: str
        default: str | None
        check: Callable[[str], T]
        metavar: str
        help: str
        commands: tuple[str, ...] = ("run",)
else:
    Option = namedtuple("Option", "flag env default check metavar help commands", defaults=(("run",),))


CONFIG = Option("--config", "EDGE_CONFIG", None, _file, "FILE", "nodes.conf (default: the bundled scripts/nodes.conf)",
                ("run", "check"))
SCRIPTS_DIR = Option("--scripts-dir", "EDGE_SCRIPTS_DIR", None, _directory, "DIR",
                     "directory of the <script>.sh files (default: the directory of --config)", ("run", "check"))
DEFAULT_INTERVAL = Option("--default-interval", "EDGE_DEFAULT_INTERVAL", "15s", _duration, "DURATION",
                          "interval of a script listed without one; heartbeat of an idle node", ("run", "check"))
OUTPUT = Option("--output", "EDGE_OUTPUT", DEFAULT_OUTPUT, _output_path, "PATH",
                "metrics file in node_exporter's textfile directory (the directory must exist), or - for stdout "
                "with --once; with --push-url it carries the collector's own metrics only")
METRIC_PREFIX = Option("--metric-prefix", "EDGE_METRIC_PREFIX", "edge_", _prefix, "PREFIX", "prefix of script metrics")
TIMEOUT = Option("--timeout", "EDGE_SCRIPT_TIMEOUT", "10s", _duration, "DURATION",
                 "a script's time limit; its whole process group is killed")
LOG_FORMAT = Option("--log-format", "EDGE_LOG_FORMAT", "text", _choice(*LOG_FORMATS), "|".join(LOG_FORMATS),
                    "log line format")
LOG_LEVEL = Option("--log-level", "EDGE_LOG_LEVEL", "info", _choice(*LOG_LEVELS), "|".join(LOG_LEVELS),
                   "least severe level logged (a run is shown at info on a terminal, at debug otherwise)")
MAX_SERIES = Option("--max-series", "EDGE_MAX_SERIES", str(DEFAULT_MAX_SERIES), _max_series, "N",
                    "series one script may export, the first in output order; the rest are dropped and counted")
SCRIPT_ENV = Option("--script-env", "EDGE_SCRIPT_ENV", "", _variable_names, "NAME[,NAME...]",
                    "variables of this environment passed on to scripts (default: none beyond the documented set)")
PUSH_URL = Option("--push-url", "EDGE_PUSH_URL", None, _push_url, "URL",
                  "push mode: send readings with their own time to this vmagent import URL, e.g. "
                  "http://127.0.0.1:8429/api/v1/import/prometheus (default: the textfile carries the readings)")
SPOOL_DIR = Option("--spool-dir", "EDGE_SPOOL_DIR", None, _spool_dir, "DIR",
                   "push mode: keep unsent readings here across restarts (default: in memory)")
SPOOL_MAX_BYTES = Option("--spool-max-bytes", "EDGE_SPOOL_MAX_BYTES", "64MiB", _size, "SIZE",
                         "push mode: spool bound; the oldest readings go first")
CLOCK_CHECK = Option("--clock-check", "EDGE_CLOCK_CHECK", "adjtimex", _choice("adjtimex", "none"), "adjtimex|none",
                     "push mode holds readings while adjtimex says the clock is unsynchronised; none trusts the clock")
METRICS_LISTEN = Option("--metrics-listen", "EDGE_METRICS_LISTEN", None, _listen, "HOST:PORT",
                        "also serve the metrics file at http://HOST:PORT/metrics (loopback only) for the node's "
                        "vmagent, where no node_exporter reads the textfile (default: off)")
CREDENTIAL_FILES = Option("--credential-files", "EDGE_CREDENTIAL_FILES", "", _credential_files, "PATH[,PATH...]",
                          "the files the node's vmagent writes to the centre with (its bearer token, the centre's "
                          "CA): one log line and edge_collector_node_credentials_missing while one is missing or "
                          "empty (default: not checked)")
OPTIONS = (CONFIG, SCRIPTS_DIR, DEFAULT_INTERVAL, OUTPUT, METRIC_PREFIX, TIMEOUT, LOG_FORMAT, LOG_LEVEL, MAX_SERIES,
           SCRIPT_ENV, PUSH_URL, SPOOL_DIR, SPOOL_MAX_BYTES, CLOCK_CHECK, METRICS_LISTEN, CREDENTIAL_FILES)


class RunOptions(Value):
    """The options of `run`, resolved and checked (resolve_run)."""

    __slots__ = (
        "clock_check",
        "config",
        "credential_files",
        "default_interval",
        "log_format",
        "log_level",
        "max_series",
        "metric_prefix",
        "metrics_listen",
        "node_name",
        "once",
        "output",
        "push_url",
        "script_env",
        "scripts_dir",
        "spool_dir",
        "spool_max_bytes",
        "timeout",
    )
    config: Final[Path | None]  # None: the bundled nodes.conf
    scripts_dir: Final[Path | None]  # None: the directory of the config
    default_interval: Final[float]
    output: Final[str]  # a path, or "-" (stdout)
    metric_prefix: Final[str]
    timeout: Final[float]
    log_format: Final[str]
    log_level: Final[str]
    max_series: Final[int]
    script_env: Final[tuple[str, ...]]
    push_url: Final[str | None]  # None: the textfile carries the readings
    spool_dir: Final[str | None]  # None: the spool is in memory
    spool_max_bytes: Final[int]
    clock_check: Final[str]
    metrics_listen: Final[str | None]
    credential_files: Final[tuple[Path, ...]]  # empty: not checked
    node_name: Final[str | None]  # None: the hostname
    once: Final[bool]

    def __init__(self, *, config: Path | None, scripts_dir: Path | None, default_interval: float, output: str,
                 metric_prefix: str, timeout: float, log_format: str, log_level: str, max_series: int,
                 script_env: tuple[str, ...], push_url: str | None, spool_dir: str | None, spool_max_bytes: int,
                 clock_check: str, metrics_listen: str | None, credential_files: tuple[Path, ...],
                 node_name: str | None, once: bool) -> None:
        self.config = config
        self.scripts_dir = scripts_dir
        self.default_interval = default_interval
        self.output = output
        self.metric_prefix = metric_prefix
        self.timeout = timeout
        self.log_format = log_format
        self.log_level = log_level
        self.max_series = max_series
        self.script_env = script_env
        self.push_url = push_url
        self.spool_dir = spool_dir
        self.spool_max_bytes = spool_max_bytes
        self.clock_check = clock_check
        self.metrics_listen = metrics_listen
        self.credential_files = credential_files
        self.node_name = node_name
        self.once = once


class CheckOptions(Value):
    """The options of `check`, resolved and checked (resolve_check)."""

    __slots__ = ("config", "configmap", "default_interval", "node_name", "scripts_dir")
    config: Final[Path | None]
    scripts_dir: Final[Path | None]
    default_interval: Final[float]
    node_name: Final[str | None]  # None: every node's plan
    configmap: Final[Path | None]  # a rendered manifest to check instead of --config

    def __init__(self, *, config: Path | None, scripts_dir: Path | None, default_interval: float,
                 node_name: str | None, configmap: Path | None) -> None:
        self.config = config
        self.scripts_dir = scripts_dir
        self.default_interval = default_interval
        self.node_name = node_name
        self.configmap = configmap


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
        if args.command == "run":
            return _run(resolve_run(args, os.environ))
        return _check(resolve_check(args, os.environ))
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
            default = f"; default {option.default}" if option.default else ""  # `--script-env`'s is empty
            subs[name].add_argument(option.flag, metavar=option.metavar, default=None,
                                    help=f"{option.help} (env {option.env}{default})")
    run.add_argument("--node-name", metavar="NAME", help="this node (env NODE_NAME; default: the hostname)")
    run.add_argument("--once", action="store_true",
                     help="run each script once, write the file (with --push-url: push the readings; what is not sent "
                          "in time stays in --spool-dir), exit 0 if all succeeded and 1 otherwise")
    check.add_argument("--node-name", metavar="NAME",
                       help="print only this node's plan (env NODE_NAME; default: every node of nodes.conf)")
    check.add_argument("--configmap", metavar="FILE",
                       help="check the ConfigMap holding nodes.conf in this rendered manifest (kubectl kustomize "
                            "output or all-in-one.yaml) instead of --config: what the cluster will see")
    for sub in subs.values():
        sub.add_argument("--version", action="version", version=version)
    return parser


def resolve_run(args: argparse.Namespace, environ: Mapping[str, str]) -> RunOptions:
    """Every option of `run`: command line, else environment, else default; each checked alike."""
    get = _Resolver(args, environ)
    # Keyword arguments are evaluated in order: plain values before paths, so a bad value is the error shown even
    # where a default path is missing.
    return RunOptions(
        default_interval=get.value(DEFAULT_INTERVAL),
        metric_prefix=get.value(METRIC_PREFIX),
        timeout=get.value(TIMEOUT),
        log_format=get.value(LOG_FORMAT),
        log_level=get.value(LOG_LEVEL),
        max_series=get.value(MAX_SERIES),
        script_env=get.value(SCRIPT_ENV),
        push_url=get.optional(PUSH_URL),
        spool_dir=get.optional(SPOOL_DIR),
        spool_max_bytes=get.value(SPOOL_MAX_BYTES),
        clock_check=get.value(CLOCK_CHECK),
        metrics_listen=get.optional(METRICS_LISTEN),
        credential_files=get.value(CREDENTIAL_FILES),
        config=get.optional(CONFIG),
        scripts_dir=get.optional(SCRIPTS_DIR),
        output=get.value(OUTPUT),
        node_name=_node_name(args, environ),
        once=bool(args.once),
    )


def resolve_check(args: argparse.Namespace, environ: Mapping[str, str]) -> CheckOptions:
    """Every option of `check`, as resolve_run() resolves them."""
    get = _Resolver(args, environ)
    return CheckOptions(
        default_interval=get.value(DEFAULT_INTERVAL),
        config=get.optional(CONFIG),
        scripts_dir=get.optional(SCRIPTS_DIR),
        node_name=_node_name(args, environ),
        configmap=None if args.configmap is None else Path(args.configmap),
    )


class _Resolver:
    def __init__(self, args: argparse.Namespace, environ: Mapping[str, str]) -> None:
        self.args = args
        self.environ = environ

    def optional(self, option: Option[T]) -> T | None:
        """The option's checked value; None when it is given nowhere and has no default."""
        assert self.args.command in option.commands, option.flag
        given = getattr(self.args, _dest(option.flag))
        source = option.flag
        if given is None and self.environ.get(option.env):
            given, source = self.environ[option.env], f"{option.env} ({option.flag})"
        if given is None:
            given = option.default
        if given is None:
            return None
        try:
            return option.check(given)
        except ValueError as error:
            raise UsageError(f"{source}: {error}") from None

    def value(self, option: Option[T]) -> T:
        """The checked value of an option that has a default."""
        value = self.optional(option)
        assert value is not None, f"{option.flag} has a default"
        return value


def _node_name(args: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    return args.node_name or environ.get("NODE_NAME") or None


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _paths(config: Path | None, scripts_dir: Path | None) -> tuple[Path, Path]:
    """nodes.conf and the scripts directory: the bundled ones unless given."""
    if config is None:
        config = shown_path(BUNDLED_DIR / "nodes.conf")
    return config, scripts_dir if scripts_dir is not None else config.parent


def shown_path(path: Path) -> Path:
    """`scripts/nodes.conf` for the bundled default seen from a checkout, rather than the package's path."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def _output(options: RunOptions) -> Path | None:
    if options.output != "-":
        return Path(options.output)
    if not options.once:
        raise UsageError("--output -: printing to stdout needs --once")
    return None


def _run(options: RunOptions) -> int:
    from edge_metrics.daemon import serve
    from edge_metrics.log import Logger
    from edge_metrics.node import Collector, Settings
    from edge_metrics.runner import RunLimits

    config, scripts = _paths(options.config, options.scripts_dir)
    output = _output(options)
    bash = _which("bash")
    if bash is None:
        raise UsageError("bash not found on PATH")
    settings = Settings(
        config_path=config,
        scripts_dir=scripts,
        node=options.node_name or os.uname().nodename,
        output=output,
        prefix=options.metric_prefix,
        default_interval=options.default_interval,
        limits=RunLimits(timeout=options.timeout, max_series=options.max_series),
        bash=bash,
        script_env=options.script_env,
        push=_push_settings(options),
        trust_unsynchronized_clock=options.clock_check == "none",
        credential_files=options.credential_files,
    )
    log = Logger(level=options.log_level, json_format=options.log_format == "json", progress=_is_terminal(sys.stderr))
    collector = Collector(settings, log)
    loaded = collector.load()
    if options.once:
        return collector.run_once() if loaded else 1
    if options.metrics_listen:
        _serve_metrics(options.metrics_listen, output, log)
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


def _push_settings(options: RunOptions) -> PushSettings | None:
    from edge_metrics.push import PushSettings

    if not options.push_url:
        return None
    return PushSettings(options.push_url, options.spool_dir or None, options.spool_max_bytes)


def _check(options: CheckOptions) -> int:
    from edge_metrics.check import check_config, check_configmap

    if options.configmap is not None:
        if options.config is not None or options.scripts_dir is not None:
            raise UsageError("--configmap: checks the ConfigMap's nodes.conf and scripts; drop --config/--scripts-dir")
        return check_configmap(options.configmap, default_interval=options.default_interval, node=options.node_name,
                               out=sys.stdout, err=sys.stderr)
    config, scripts = _paths(options.config, options.scripts_dir)
    return check_config(
        config,
        scripts_dir=scripts,
        default_interval=options.default_interval,
        node=options.node_name,
        out=sys.stdout,
        err=sys.stderr,
    )


def _is_terminal(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except ValueError:  # closed
        return False


def _which(program: str) -> str | None:
    # shutil.which would do, at the cost of importing shutil and its dependencies into a long-lived process.
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or ".", program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None
