"""The collector's state for one node and the steps of its loop: reload, run the next due job, hand readings to
the pusher, heartbeat, and when to wake next. daemon.py drives these steps and owns the signals.

Every effect is passed in (the script runner, the file writer, the clocks, the pusher), so a fake runner with canned
durations and a fake clock drive the whole loop in-process (tests/unit/test_loop.py).
"""

from __future__ import annotations

import gc
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from edge_metrics.clock import ClockReading, Timekeeper, read_clock
from edge_metrics.config import ConfigError, load_config
from edge_metrics.credentials import CredentialsWatch
from edge_metrics.durations import format_duration
from edge_metrics.httppost import ERROR_CAUSES
from edge_metrics.log import Logger
from edge_metrics.merge import reject_conflicts, script_families, type_changes
from edge_metrics.parse import parse_output
from edge_metrics.push import DROP_REASONS, Pusher, PushSettings, make_pusher
from edge_metrics.reaper import become_subreaper, reap_orphans
from edge_metrics.render import render
from edge_metrics.runner import RunLimits, run_script, script_environment
from edge_metrics.samples import Job, Plan, RejectedLine, RunResult, ScriptStats, Value
from edge_metrics.schedule import ReloadTimer, Schedule
from edge_metrics.selfmetrics import CollectorHealth, PushHealth, SelfMetrics, push_blocks
from edge_metrics.snapshot import ScriptSnapshots
from edge_metrics.textfile import WriteError, remove_stale_temp_files, write_atomically

TYPE_CHECKING = False  # `typing` for the type checker only (see log.py)
if TYPE_CHECKING:
    from typing import Final

LOGGED_LINES_PER_RUN = 5  # invalid lines logged one by one per run; the rest are counted and summarised
STDERR_LINES_LOGGED = 3
STDERR_LINE_WIDTH = 200  # characters of each logged stderr line
LOGGED_COMMANDS = 10  # commands named in the log line about processes a script left running
GC_THRESHOLD = 50_000  # tracked allocations between young-generation collections (CPython's default: 700)

Runner = Callable[..., RunResult]  # run_script's signature
Writer = Callable[[Path, str], None]  # textfile.write_atomically


class Stop:
    """A stop requested (SIGTERM/SIGINT): the flag, and the fd a signal's byte lands on, so a run in progress is
    cancelled at once."""

    __slots__ = ("fd", "requested")

    def __init__(self, fd: int | None = None) -> None:
        self.fd = fd
        self.requested = False


class Settings(Value):
    __slots__ = (
        "bash", "config_path", "credential_files", "default_interval", "limits", "node", "output", "prefix", "push",
        "script_env", "scripts_dir", "trust_unsynchronized_clock",
    )
    config_path: Final[Path]
    scripts_dir: Final[Path]
    node: Final[str]
    output: Final[Path | None]  # None: print to stdout (only with --once)
    prefix: Final[str]
    default_interval: Final[float]
    limits: Final[RunLimits]
    bash: Final[str]
    script_env: Final[tuple[str, ...]]  # names of variables of the collector's environment passed to scripts
    push: Final[PushSettings | None]  # None: the textfile carries the readings (no --push-url)
    trust_unsynchronized_clock: Final[bool]  # --clock-check none
    credential_files: Final[tuple[Path, ...]]  # --credential-files: the node vmagent's token and CA

    def __init__(
        self,
        config_path: Path,
        scripts_dir: Path,
        node: str,
        output: Path | None,
        prefix: str,
        default_interval: float,
        limits: RunLimits,
        bash: str,
        script_env: tuple[str, ...] = (),
        push: PushSettings | None = None,
        trust_unsynchronized_clock: bool = False,
        credential_files: tuple[Path, ...] = (),
    ) -> None:
        self.config_path = config_path
        self.scripts_dir = scripts_dir
        self.node = node
        self.output = output
        self.prefix = prefix
        self.default_interval = default_interval
        self.limits = limits
        self.bash = bash
        self.script_env = script_env
        self.push = push
        self.trust_unsynchronized_clock = trust_unsynchronized_clock
        self.credential_files = credential_files


class Collector:
    """The collector's state for one node and the steps that change it."""

    def __init__(
        self,
        settings: Settings,
        log: Logger,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        runner: Runner = run_script,
        writer: Writer = write_atomically,
        read_clock_now: Callable[[], ClockReading] | None = None,
        pusher: Pusher | None = None,
        reap: Callable[[], object] = reap_orphans,
        subreaper: Callable[[], str | None] = become_subreaper,
    ) -> None:
        self.settings = settings
        self.log = log
        self.clock = clock
        self.wall = wall
        self.run_script = runner
        self.write_file = writer
        self.reap = reap
        self.become_subreaper = subreaper
        self.plan = Plan(node=settings.node, jobs=())
        self.self_metrics = SelfMetrics(self.plan.jobs, settings.node)
        self.stats: dict[str, ScriptStats] = {}
        self.schedule = Schedule()
        self.write_failures = 0
        self.reload_successful = False
        self.reload_success_timestamp: float | None = None
        self.other_nodes_problems = 0
        self.announced = False
        self.last_write = -float("inf")
        self.fingerprint: Fingerprint | None = None
        self.snapshots = ScriptSnapshots()  # the private copies the plan's scripts run from
        self.reload_timer = ReloadTimer(clock())
        self.last_ran: str | None = None  # the script run by the step just before, while the loop has not waited
        trust = settings.trust_unsynchronized_clock
        self.timekeeper = Timekeeper(log, read_clock_now or (lambda: read_clock(trust_unsynchronized=trust)))
        if pusher is None and settings.push is not None:
            pusher = make_pusher(settings.push, self.timekeeper, log)
        self.pusher = pusher
        self.credentials = CredentialsWatch(settings.credential_files, log)
        # The scripts' environment, built once: reading os.environ decodes every variable.
        self.script_env = script_environment(
            os.environ, node=settings.node, timeout=settings.limits.timeout, passed=settings.script_env
        )

    # -- configuration -------------------------------------------------------------------------------------

    def load(self, *, quiet_failure: bool = False) -> bool:
        """(Re)load nodes.conf and the scripts; an invalid one is rejected and the last good plan keeps running.

        With `quiet_failure`, a rejected config changes nothing and logs nothing: the caller retries shortly.
        """
        fingerprint = stat_config_and_scripts(self.settings.config_path, self.settings.scripts_dir)
        try:
            config = load_config(
                self.settings.config_path,
                scripts_dir=self.settings.scripts_dir,
                default_interval=self.settings.default_interval,
                node=self.settings.node,
            )
            # The content read with nodes.conf is what runs: a copy the collector owns (snapshot.py).
            plan = self.snapshots.install(config.plan_for(self.settings.node), self.settings.scripts_dir)
        except ConfigError as error:
            if quiet_failure:
                return False
            self.fingerprint = fingerprint
            for problem in error.problems:
                self.log.error(problem)
            self.log.error(
                "config rejected; keeping the last good config",
                problems=len(error.problems),
                running=describe_jobs(self.plan.jobs),
            )
            self.reload_successful = False
            return False
        self.fingerprint = fingerprint
        for problem in config.other_problems:
            self.log.warning(f"{problem} (another node's line: this node runs regardless)")
        self.other_nodes_problems = len(config.other_problems)
        self.schedule = self.schedule.replan(plan.jobs, self.clock())
        self.stats = {job.script: self.stats.get(job.script, ScriptStats()) for job in plan.jobs}
        self.plan = plan
        self.self_metrics = SelfMetrics(plan.jobs, self.settings.node)
        self.reload_successful = True
        self.reload_success_timestamp = round(self.wall(), 3)
        where = f"line {plan.line} ({plan.pattern})" if plan.line is not None else "no matching line: default"
        self.log.info(
            "config loaded",
            node=plan.node,
            scripts=describe_jobs(plan.jobs),
            selected_by=where,
            output=self.settings.output or "-",
            config=self.settings.config_path,
        )
        return True

    def config_changed(self, *, full: bool = True) -> bool:
        """Whether nodes.conf or the scripts changed since the last load.

        Not `full` (the check before every run): only nodes.conf and the scripts seen at the last load are
        stat'ed, without listing the scripts directory, a noticeable share of a run's CPU (the table of changes in
        docs/performance.md). A ConfigMap update
        still shows (new inodes behind nodes.conf and the scripts); a script added on its own, which matters only
        to a config waiting for it, shows at the next full check (every RELOAD_POLL_SECONDS).
        """
        if self.fingerprint is None:
            return True
        if full:
            return stat_config_and_scripts(self.settings.config_path, self.settings.scripts_dir) != self.fingerprint
        known = stat_config_and_known_scripts(self.settings.config_path, self.settings.scripts_dir, self.fingerprint)
        return known != self.fingerprint

    # -- one run -------------------------------------------------------------------------------------------

    def run_job(self, job: Job, *, skipped: int = 0, stop: Stop | None = None) -> RunResult:
        stats = self.stats[job.script]
        stats.skipped += skipped
        if skipped:
            self._log_skipped(job, skipped)
        stop = stop or Stop()
        started = self.timekeeper.read()  # the readings' time
        result = self.run_script(
            job.run_from or job.path,  # the accepted content (snapshot.py)
            shown_as=job.path,
            bash=self.settings.bash,
            env=self.script_env,
            limits=self.settings.limits,
            cancel_fd=stop.fd,
            should_cancel=lambda: stop.requested,
        )
        if result.cancelled:
            return result  # shutting down: the run does not count and its partial output is not exported
        self._record(job, stats, result, started)
        return result

    def _log_skipped(self, job: Job, skipped: int) -> None:
        """Ticks of `job` that passed before the loop came to it (its own overruns are counted when it ends)."""
        if self.last_ran is not None and self.last_ran != job.script:
            self.log.warning("skipped runs: another script's run was still going", script=job.script,
                             skipped=skipped, other=self.last_ran)
        else:
            self.log.warning("skipped runs: the collector was late for them (stopped, suspended or starved of CPU)",
                             script=job.script, skipped=skipped)

    def _record(self, job: Job, stats: ScriptStats, result: RunResult, started: ClockReading | None = None) -> None:
        parsed = parse_output(result.stdout, prefix=self.settings.prefix, max_series=self.settings.limits.max_series)
        others = {script: s.samples for script, s in self.stats.items()}
        declared = {metadata.name: metadata for metadata in parsed.metadata}  # the script's HELP/TYPE lines
        samples, conflicts = reject_conflicts(job.script, parsed.samples, others, metadata=declared,
                                              others_metadata={script: s.metadata for script, s in self.stats.items()})
        rejected = [*parsed.rejected, *conflicts]
        if self.pusher is not None:
            # On disk before the run counts as taken: a crash from here on loses none of it.
            self.pusher.record(job.script, samples, started or self.timekeeper.read(), metadata=declared)
        stats.runs += 1
        stats.invalid_lines += len(rejected)
        stats.last_duration = round(result.duration, 6)
        stats.last_exit_code = result.exit_code if result.exit_code is not None else _killed_code(result)
        stats.last_success = result.succeeded
        for name, was, now in type_changes(stats.samples, stats.metadata, samples, declared):
            self.log.warning("TYPE changed between runs", script=job.script, metric=name, was=was, now=now)
        # A failed run still exports the valid lines it printed; what it no longer prints disappears.
        stats.samples = samples
        stats.metadata = declared
        if result.stdout_truncated:
            stats.truncations += 1
            self.log.warning(
                "script output exceeded the cap; the excess was discarded",
                script=job.script, cap_bytes=self.settings.limits.stdout_cap,
            )
        if result.killed:
            stats.processes_killed += len(result.killed)
            self.log.warning("killed processes the script left running", script=job.script,
                             count=len(result.killed), commands=" | ".join(result.killed[:LOGGED_COMMANDS]))
        if parsed.dropped:
            stats.series_dropped += parsed.dropped
            self.log.warning("script printed more series than allowed; the first ones were kept", script=job.script,
                             max_series=self.settings.limits.max_series, dropped_lines=parsed.dropped)
        self._log_lines("invalid line", job.script, rejected)
        self._log_lines("duplicate series; the last value wins", job.script, list(parsed.overridden))
        if result.succeeded:
            stats.last_success_timestamp = round(self.wall(), 3)
            self.log.progress("script ran", script=job.script, duration=f"{result.duration:.3f}s",
                              samples=len(samples))
            return
        stats.failures += 1
        stderr = _first_lines(result.stderr, STDERR_LINES_LOGGED)
        if result.timed_out:
            stats.timeouts += 1
            self.log.error("script timed out; its process group was killed", script=job.script,
                           timeout=format_duration(self.settings.limits.timeout), stderr=stderr)
        elif result.spawn_error is not None:
            self.log.error("script could not start", script=job.script, reason=result.spawn_error)
        else:
            self.log.error("script failed", script=job.script, exit_code=result.exit_code,
                           duration=f"{result.duration:.3f}s", stderr=stderr)

    def _log_lines(self, message: str, script: str, lines: list[RejectedLine]) -> None:
        for number, line in enumerate(lines):
            where = {"line": line.line_number} if line.line_number else {}
            # The first few as warnings; the rest at debug, so a flood is still visible to whoever asks for it.
            emit = self.log.warning if number < LOGGED_LINES_PER_RUN else self.log.debug
            emit(message, script=script, **where, reason=line.reason, text=line.text)
        if len(lines) > LOGGED_LINES_PER_RUN:
            self.log.warning(f"{message}: more logged at debug level", script=script,
                             count=len(lines) - LOGGED_LINES_PER_RUN)

    # -- output --------------------------------------------------------------------------------------------

    def exposition(self) -> str:
        health = CollectorHealth(
            node=self.settings.node,
            write_failures=self.write_failures,
            reload_successful=self.reload_successful,
            reload_success_timestamp=self.reload_success_timestamp,
            write_timestamp=round(self.wall(), 3),
            other_nodes_problems=self.other_nodes_problems,
            credentials_missing=self.credentials.missing,
        )
        # Push mode: the readings travel with their own time; the file carries the self-metrics only, so no reading
        # reaches the centre twice (docs/time.md).
        families = [] if self.pusher is not None else script_families(
            {job.script: self.stats[job.script].samples for job in self.plan.jobs},
            {job.script: self.stats[job.script].metadata for job in self.plan.jobs},
        )
        return render(families, self.self_metrics.blocks(self.stats, health) + push_blocks(self.push_health()))

    def push_health(self) -> PushHealth:
        pusher = self.pusher
        clock = self.timekeeper.read()
        if pusher is None:
            return PushHealth(False, 0, 0, 0, dict.fromkeys(DROP_REASONS, 0), dict.fromkeys(ERROR_CAUSES, 0), None,
                              clock, self.timekeeper.steps, 0)
        spool = pusher.spool
        return PushHealth(True, pusher.sent_samples, spool.samples - spool.held_samples, spool.bytes,
                          pusher.dropped_by_reason(), pusher.errors, pusher.last_success, clock,
                          self.timekeeper.steps, spool.held_samples, resent_samples=pusher.resent_samples,
                          spool_max_bytes=spool.limit)

    def write(self) -> bool:
        self.last_write = self.clock()
        self.credentials.check()  # two stat() calls: the file says what holds now
        output = self.settings.output
        if output is None:
            data = memoryview(self.exposition().encode())
            try:
                while data:  # a pipe may take it in several writes
                    data = data[os.write(1, data) :]
            except OSError as error:  # `| head` closed the pipe: a failed write, not a traceback
                self.log.error("cannot write the metrics to stdout", reason=error.strerror)
                return False
            return True
        text = self.exposition()
        try:
            self.write_file(output, text)
        except WriteError as error:
            self.write_failures += 1
            self.log.error("cannot write the metrics file; the previous one is intact; retrying at the next run",
                           reason=str(error))
            return False
        if not self.announced and (not self.plan.jobs or any(s.runs for s in self.stats.values())):
            # Once, with the first readings in it: where the file is and how much it holds.
            self.announced = True
            series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
            self.log.info("metrics file written; rewritten after every run", path=output, series=series,
                          scripts=describe_jobs(self.plan.jobs))
        return True

    def adopt_orphans(self) -> None:
        """Become the child subreaper, so what a script leaves running is reparented to the collector (reaper.py)."""
        problem = self.become_subreaper()
        if problem is not None:
            self.log.warning("cannot become the child subreaper; processes that leave a script's process group "
                             "may survive it", reason=problem)

    def clear_stale_temp_files(self) -> None:
        """The temp files an earlier collector, killed mid-write, left beside the output file."""
        output = self.settings.output
        if output is None:
            return
        # No mkdir: the command line refuses a missing directory rather than creating one where a typo points.
        removed, foreign = remove_stale_temp_files(output)
        for path in removed:
            self.log.info("removed a temp file left by an earlier collector", path=path)
        for path in foreign:
            self.log.warning("not a regular file at a temp file name; left alone (writes use other names)",
                             path=path)

    # -- modes ---------------------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Each script of the plan once, then write; 0 when every run succeeded."""
        tune_gc()
        self.adopt_orphans()
        self.clear_stale_temp_files()
        all_ok = True
        for job in self.plan.jobs:
            all_ok = self.run_job(job).succeeded and all_ok
        written = self.finish()  # one bounded attempt to push; what could not be sent is spooled (or counted lost)
        return 0 if all_ok and written else 1

    # -- the loop's steps (daemon.serve drives them) -------------------------------------------------------

    def start(self) -> None:
        tune_gc()
        self.adopt_orphans()
        self.clear_stale_temp_files()
        output = self.settings.output
        if not self.plan.jobs or output is None or not output.exists():
            # After a restart, the previous file keeps its readings until the first run (due now) replaces it,
            # rather than being replaced by one without any; a fresh start gets its file at once.
            self.write()
        self.reload_timer = ReloadTimer(self.clock())
        if self.pusher is not None:
            self.pusher.start()

    def reload(self, *, hup: bool = False) -> None:
        """SIGHUP, a retry after the settle delay, or a change seen by the periodic check or before a run (so a
        script that a ConfigMap update removed does not run once more)."""
        now = self.clock()
        due = self.schedule.next_due()
        action = self.reload_timer.action(now, run_due=due is not None and due <= now, hup=hup)
        if action == "hup":
            self.log.info("SIGHUP: reloading the config")
            self.load()
            self.write()
        elif action == "retry":
            self.load()
            self.write()
        elif action is not None and self.config_changed(full=action == "full"):
            if self.load(quiet_failure=True):
                self.write()
            else:
                self.reload_timer.failed_quietly(now)

    def run_next_due(self, stop: Stop | None = None) -> RunResult | None:
        """Run the job that is due, if any; its readings go to the pusher and the file. None: nothing was due."""
        taken = self.schedule.take_due(self.clock())
        if taken is None:
            return None
        job, skipped = taken
        result = self.run_job(job, skipped=skipped, stop=stop)
        self.reap()
        self.last_ran = job.script
        if result.cancelled or (stop is not None and stop.requested):
            return result
        passed = self.schedule.finished(job, self.clock())
        self.stats[job.script].skipped += passed
        if passed:
            self.log.warning("run overran its interval; missed ticks skipped", script=job.script,
                             skipped=passed, duration=f"{result.duration:.3f}s")
        self.hand_over()
        self.write()
        return result

    def hand_over(self) -> None:
        """The pusher's look at the clock (held readings to stamp, a step back) and a nudge to its sender; the
        sending itself, and its back-off, happen beside the loop."""
        if self.pusher is not None:
            self.pusher.tick()

    def heartbeat(self) -> None:
        """An idle node still proves it is alive: the file rewritten at least every default interval."""
        if self.clock() - self.last_write >= self.settings.default_interval:
            self.write()

    def next_wake(self) -> float:
        """When the loop has something to do next, on self.clock."""
        now = self.clock()
        check = self.pusher.next_check() if self.pusher is not None else None
        wakes = (self.schedule.next_due(), self.reload_timer.next_wake(),
                 self.last_write + self.settings.default_interval, None if check is None else now + check)
        return min(x for x in wakes if x is not None)

    def finish(self) -> bool:
        """At the end, whatever ended it: the last push within its grace, what is unsent kept or counted, and
        the file with those counts."""
        try:
            if self.pusher is not None:
                self.pusher.stop()
        finally:
            written = self.write()
        return written


def tune_gc() -> None:
    """Fewer cyclic-GC passes. The collector's data is acyclic (strings, tuples, immutable value objects) and freed by
    reference counting, yet at the default threshold the GC rescanned the growing heap again and again while a
    big output was parsed (bench/collector_bench.py; the share it took is in the table of changes in
    docs/performance.md). What is alive at start-up (modules, config) is frozen out of every collection."""
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD)


StatKey = tuple[int, int, int, int] | None  # device, inode, mtime, size; None: missing
Fingerprint = tuple[StatKey, tuple[tuple[str, StatKey], ...]]  # nodes.conf, then every `*.sh` by name


def stat_config_and_scripts(config_path: Path, scripts_dir: Path) -> Fingerprint:
    """What a change to nodes.conf or the scripts looks like from outside: following symlinks, so a kubelet
    `..data` swap (new inodes behind the same names) counts as a change."""
    try:
        with os.scandir(scripts_dir) as entries:
            # entry.path: the joined path as a string, without building a Path per script.
            scripts = sorted([(entry.name, entry.path) for entry in entries if entry.name.endswith(".sh")])
    except OSError:
        scripts = []
    return _stat_key(config_path), tuple([(name, _stat_key(path)) for name, path in scripts])


def stat_config_and_known_scripts(config_path: Path, scripts_dir: Path, previous: Fingerprint) -> Fingerprint:
    """stat_config_and_scripts() for the scripts that `previous` lists, without listing the directory: equal to
    `previous` unless nodes.conf or one of those scripts changed or disappeared."""
    directory = os.fspath(scripts_dir)
    return _stat_key(config_path), tuple([(name, _stat_key(os.path.join(directory, name))) for name, _ in previous[1]])


def _stat_key(path: Path | str) -> StatKey:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def describe_jobs(jobs: tuple[Job, ...]) -> str:
    return ",".join(f"{job.script}:{format_duration(job.interval)}" for job in jobs) or "default (no scripts)"


def _killed_code(result: RunResult) -> int:
    # Ended by the collector: report it like a shell would, 128 + the signal that ended it.
    return 128 + (result.signal or signal.SIGKILL)


def _first_lines(data: bytes, count: int, width: int = STDERR_LINE_WIDTH) -> str:
    # Each line cut to `width`, so one long line (a dumped buffer) cannot push the others off the screen.
    lines = data.decode("utf-8", "replace").strip().splitlines()[:count]
    return " | ".join(line if len(line) <= width else f"{line[:width]}... ({len(line) - width} more chars)"
                      for line in lines)
