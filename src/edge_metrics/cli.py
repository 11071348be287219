"""Command line: options (each also from an environment variable, for the DaemonSet) and logging setup.

The only module that turns errors into exit codes: 0 ok, 1 a script or the config failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from edge_metrics import __version__
from edge_metrics.durations import DurationError, parse_duration

TYPE_CHECKING = False  # `typing` for the type checker only (see log.py)
if TYPE_CHECKING:
    from edge_metrics.push import PushSettings

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
DEFAULT_OUTPUT = "/var/lib/prometheus/node-exporter/custom_metrics.prom"  # Debian node_exporter's textfile dir
_PREFIX_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:")


class UsageError(Exception):
    """Bad options; reported as one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def entry_point() -> None:
    sys.exit(main(sys.argv[1:]))


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    if argv[:1] == ["simulate"]:
        # The simulator is a development tool with its own options; the collector never imports it.
        from edge_metrics.simulate import main as simulate_main

        return simulate_main(argv[1:])
    try:
        args = _build_parser().parse_args(argv)
        if args.command == "run":
            return _run(args)
        if args.command == "check":
            return _check(args)
    except UsageError as error:
        print(f"edge-metrics: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print("edge-metrics: error: a command is required: run, check or simulate (see edge-metrics --help)",
          file=sys.stderr)
    return 2


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value else default


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edge-metrics", description="Hardware readings from bash scripts -> Prometheus textfile.")
    parser.add_argument("--version", action="version", version=f"edge-metrics {__version__}")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--config", default=_env("EDGE_CONFIG"), metavar="FILE",
                         help="nodes.conf (env EDGE_CONFIG; default: the bundled example)")
        sub.add_argument("--scripts-dir", default=_env("EDGE_SCRIPTS_DIR"), metavar="DIR",
                         help="directory of <script>.sh (env EDGE_SCRIPTS_DIR; default: the config's directory)")
        sub.add_argument("--node-name", default=_env("NODE_NAME"), metavar="NAME",
                         help="this node (env NODE_NAME; default: the hostname)")
        sub.add_argument("--default-interval", default=_env("EDGE_DEFAULT_INTERVAL", "15s"), metavar="DURATION",
                         help="interval of a script listed without one (env EDGE_DEFAULT_INTERVAL; 15s)")

    run = commands.add_parser("run", help="run the node's scripts on schedule and write the metrics file")
    common(run)
    run.add_argument("--output", default=_env("EDGE_OUTPUT", DEFAULT_OUTPUT), metavar="PATH",
                     help=f"metrics file, or - for stdout with --once (env EDGE_OUTPUT; {DEFAULT_OUTPUT})")
    run.add_argument("--metric-prefix", default=_env("EDGE_METRIC_PREFIX", "edge_"), metavar="PREFIX",
                     help="prefix of script metrics (env EDGE_METRIC_PREFIX; edge_)")
    run.add_argument("--timeout", default=_env("EDGE_SCRIPT_TIMEOUT", "10s"), metavar="DURATION",
                     help="a script's time limit; its whole process group is killed (env EDGE_SCRIPT_TIMEOUT; 10s)")
    run.add_argument("--log-format", default=_env("EDGE_LOG_FORMAT", "text"), choices=("text", "json"),
                     help="env EDGE_LOG_FORMAT; text")
    run.add_argument("--log-level", default=_env("EDGE_LOG_LEVEL", "info"),
                     choices=("debug", "info", "warning", "error"), help="env EDGE_LOG_LEVEL; info")
    run.add_argument("--push-url", default=_env("EDGE_PUSH_URL"), metavar="URL",
                     help="push mode: send readings with their own time to this vmagent import URL, e.g. "
                     "http://127.0.0.1:8429/api/v1/import/prometheus (env EDGE_PUSH_URL; default: textfile only)")
    run.add_argument("--spool-dir", default=_env("EDGE_SPOOL_DIR"), metavar="DIR",
                     help="push mode: keep unsent readings here across restarts (env EDGE_SPOOL_DIR; default: memory)")
    run.add_argument("--spool-max-bytes", default=_env("EDGE_SPOOL_MAX_BYTES", "64MiB"), metavar="SIZE",
                     help="push mode: spool bound; the oldest readings go first (env EDGE_SPOOL_MAX_BYTES; 64MiB)")
    run.add_argument("--clock-check", default=_env("EDGE_CLOCK_CHECK", "adjtimex"), choices=("adjtimex", "none"),
                     help="push mode holds readings while adjtimex says the clock is unsynchronised; none trusts "
                     "the clock (env EDGE_CLOCK_CHECK; adjtimex)")
    run.add_argument("--once", action="store_true",
                     help="run each script once, write, exit 0 if all succeeded and 1 otherwise")

    # Listed for --help only: main() hands `simulate` to the simulator before this parser runs.
    commands.add_parser("simulate", add_help=False,
                        help="run a command under the I2C simulator (edge-metrics simulate --help)")

    check = commands.add_parser("check", help="validate nodes.conf and its scripts; print the plan")
    common(check)
    return parser


def _duration(option: str, text: str) -> float:
    try:
        return parse_duration(text)
    except DurationError as error:
        raise UsageError(f"{option}: {error}") from None


def _paths(args: argparse.Namespace) -> tuple[Path, Path]:
    if args.config is None:
        config = BUNDLED_DIR / "nodes.conf"
        scripts = Path(args.scripts_dir) if args.scripts_dir else BUNDLED_DIR
    else:
        config = Path(args.config)
        scripts = Path(args.scripts_dir) if args.scripts_dir else config.parent
    if not config.is_file():
        raise UsageError(f"--config: {config} is not a file")
    if not scripts.is_dir():
        raise UsageError(f"--scripts-dir: {scripts} is not a directory")
    return config, scripts


def _node_name(args: argparse.Namespace) -> str:
    return str(args.node_name) if args.node_name else os.uname().nodename


def _run(args: argparse.Namespace) -> int:
    from edge_metrics.daemon import Collector, Settings
    from edge_metrics.log import Logger
    from edge_metrics.runner import RunLimits

    config, scripts = _paths(args)
    if args.metric_prefix and (set(args.metric_prefix) - _PREFIX_CHARS or args.metric_prefix[0].isdigit()):
        raise UsageError(f"--metric-prefix: {args.metric_prefix!r} is not a valid metric name prefix")
    if args.output == "-" and not args.once:
        raise UsageError("--output -: printing to stdout needs --once")
    if args.output != "-" and os.path.lexists(args.output) and not os.path.isfile(args.output):
        # The file is replaced by rename: as root, `--output /dev/null` would replace the device with a file.
        raise UsageError(f"--output: {args.output} exists and is not a regular file")
    bash = _which("bash")
    if bash is None:
        raise UsageError("bash not found on PATH")
    push = _push_settings(args)
    settings = Settings(
        config_path=config,
        scripts_dir=scripts,
        node=_node_name(args),
        output=None if args.output == "-" else Path(args.output),
        prefix=args.metric_prefix,
        default_interval=_duration("--default-interval", args.default_interval),
        limits=RunLimits(timeout=_duration("--timeout", args.timeout)),
        bash=bash,
        push=push,
        trust_unsynchronized_clock=args.clock_check == "none",
    )
    log = Logger(level=args.log_level, json_format=args.log_format == "json")
    collector = Collector(settings, log)
    loaded = collector.load()
    if args.once:
        return collector.run_once() if loaded else 1
    return collector.serve()


def _push_settings(args: argparse.Namespace) -> PushSettings | None:
    from edge_metrics.httppost import parse_url
    from edge_metrics.push import PushSettings
    from edge_metrics.spool import parse_size

    if not args.push_url:
        return None
    try:
        parse_url(args.push_url)
    except ValueError as error:
        raise UsageError(f"--push-url: {error}") from None
    try:
        max_bytes = parse_size(args.spool_max_bytes)
    except ValueError as error:
        raise UsageError(f"--spool-max-bytes: {error}") from None
    if args.spool_dir and os.path.lexists(args.spool_dir) and not os.path.isdir(args.spool_dir):
        raise UsageError(f"--spool-dir: {args.spool_dir} exists and is not a directory")
    return PushSettings(args.push_url, args.spool_dir or None, max_bytes)


def _check(args: argparse.Namespace) -> int:
    from edge_metrics.check import check_config

    config, scripts = _paths(args)
    return check_config(
        config,
        scripts_dir=scripts,
        default_interval=_duration("--default-interval", args.default_interval),
        node=args.node_name,
        out=sys.stdout,
        err=sys.stderr,
    )


def _which(program: str) -> str | None:
    # shutil.which would do, at the cost of importing shutil and its dependencies into a long-lived process.
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or ".", program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None
