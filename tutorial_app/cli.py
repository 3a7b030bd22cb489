"""The ``tutorial-app`` command: run a whole task locally, describe the app, benchmark.

Every mistake in the command line or the environment is one line naming the
setting, exit status 2, before anything starts.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import engine
from golem_task_api.loop import run as run_loop
from engine.cores import MAX_WORKERS, check_worker_count
from engine.errors import InvalidWorkerCount
from engine.kernels import get_kernel
from engine.pow import check_difficulty

from tutorial_app import descriptor, meta
from tutorial_app.settings import SettingError, check_engine_settings
from tutorial_app.outdir import OutDirError, check_out_dir
from tutorial_app.progress import ProgressBar, format_duration, format_rate
from tutorial_app.report import format_table
from tutorial_app.servers import (
    ForeignDirectoryError, LocalServers, RemoteServers, Servers, check_provider_dir, parse_address,
    scratch_dir, scratch_need_bytes,
)
from tutorial_app.node import RunError, TaskRun, default_split, expected_run_seconds

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
# Shell convention: 128 + signal number.
EXIT_SIGINT = 128 + signal.SIGINT
EXIT_SIGTERM = 128 + signal.SIGTERM
LOG_LEVEL_ENV = "TUTORIAL_APP_LOG_LEVEL"
ABSURD_RUN_SECONDS = 86400.0
"""A run expected to search longer than this gets a warning up front."""



def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _workers(text: str) -> int:
    # The engine's own bound, checked here so a bad count is one usage line,
    # not servers started and then a traceback from each of them.
    try:
        return check_worker_count(int(text, 10))
    except (ValueError, InvalidWorkerCount):
        raise argparse.ArgumentTypeError(
            f"workers must be a positive integer up to {MAX_WORKERS}, got {text!r}") from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < value < 1e8:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _difficulty(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    try:
        return check_difficulty(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _address(text: str) -> tuple[str, int]:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _verbose(parser: argparse.ArgumentParser, top: bool) -> None:
    # Accepted before and after the subcommand; the subcommand's copy must not
    # reset what was given before it.
    parser.add_argument("-v", "--verbose", action="store_true",
                        default=False if top else argparse.SUPPRESS,
                        help="log what the node does, and show the app servers' log lines")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tutorial-app",
        description="The Golem Task API proof-of-work app.",
        epilog=f"Environment: TUTORIAL_APP_WORKERS (engine workers), TUTORIAL_APP_KERNEL "
        f"(scan kernel), {LOG_LEVEL_ENV} (the app servers' log level; set, their lines are shown).",
    )
    _verbose(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run a whole task on this machine (requestor + providers over gRPC)",
        description="Play the Golem node locally: create a task from INPUT_FILE, compute "
        "every subtask on short-lived provider app servers, verify, and collect results. "
        f"Limits: INPUT_FILE up to {meta.MAX_INPUT_BYTES} bytes of UTF-8 text, "
        f"at most {meta.MAX_PARTS} subtasks.",
    )
    _verbose(run, top=False)
    run.add_argument("input_file", type=Path, metavar="INPUT_FILE", help="UTF-8 text to prove work on")
    run.add_argument("--difficulty", "-d", type=_difficulty, required=True,
                     help="leading zero bits the digest needs (0..256); a subtask tries 2^d "
                     "nonces on average, so each +1 doubles the search (measured on 2 cores, "
                     "4 subtasks in all: d=20 about 0.15 s, d=24 0.3-0.5 s, d=28 3-5 s)")
    run.add_argument("--subtasks", "-n", type=_positive, default=4,
                     help=f"subtasks to split into (default 4, at most {meta.MAX_PARTS})")
    run.add_argument("--providers", "-p", type=_positive, default=None,
                     help="provider app servers computing at a time (default: one per usable core)")
    run.add_argument("--workers", "-w", type=_workers, default=None,
                     help="search threads per provider (default: the usable cores; the providers "
                     "computing at once share them, and the last ones of a run use them all)")
    run.add_argument("--subtask-timeout", type=_seconds, default=None, metavar="SECONDS",
                     help="give a provider this long per subtask, then stop it and re-issue the "
                     "part (default: 30 s + 12x the expected search time at the measured rate)")
    run.add_argument("--out", type=Path, default=Path("tutorial-app-out"),
                     help="where results go; must not hold an earlier run (default ./tutorial-app-out)")
    run.add_argument("--json", action="store_true",
                     help="print the summary (the same as OUT/summary.json) instead of a table")
    run.add_argument("--keep-work-dirs", action="store_true",
                     help="keep the app servers' work dirs and logs (their place is printed)")
    remote = run.add_argument_group(
        "app servers elsewhere",
        "drive already-running app servers (e.g. containers) through shared work dirs; "
        "a server that accepts no connection within 10 s is given up",
    )
    remote.add_argument("--requestor", type=_address, metavar="HOST:PORT")
    remote.add_argument("--requestor-dir", type=Path, metavar="DIR", help="the requestor's work dir as seen here")
    remote.add_argument("--provider", type=_address, metavar="HOST:PORT")
    remote.add_argument("--provider-dir", type=Path, metavar="DIR",
                        help="the provider's work dir as seen here: empty, or holding only what "
                        "tutorial-app put there (anything else is refused, never deleted)")

    desc = commands.add_parser("descriptor", help="print the app definition a Golem node loads to publish the app")
    _verbose(desc, top=False)
    bench = commands.add_parser("benchmark", help="print this machine's benchmark score in MH/s")
    _verbose(bench, top=False)
    bench.add_argument("--workers", "-w", type=_workers, default=None,
                       help="engine worker processes (default: usable cores)")
    return parser


def check_environment() -> dict[str, str]:
    """The app's environment settings, each checked; `SettingError` names a bad one.

    Returns the settings to hand to the app servers.
    """
    check_engine_settings()
    env = {}
    level = os.environ.get(LOG_LEVEL_ENV, "").strip()
    if level:
        if not isinstance(logging.getLevelName(level.upper()), int):
            raise SettingError(f"{LOG_LEVEL_ENV}={level!r} is not a logging level "
                               "(DEBUG, INFO, WARNING, ERROR, CRITICAL)")
        env[LOG_LEVEL_ENV] = level.upper()
    return env


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tutorial-app`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    node_level = os.environ.get(LOG_LEVEL_ENV, "").strip().upper() if args.command == "run" else ""
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "descriptor":
        print(json.dumps(descriptor.app_descriptor(), indent=2))
        return EXIT_OK
    try:
        server_env = check_environment()
    except SettingError as exc:
        parser.error(str(exc))
    if node_level and not args.verbose:
        logging.getLogger().setLevel(node_level)
    if args.command == "benchmark":
        try:
            score = engine.benchmark(workers=args.workers)
        except engine.EngineError as exc:
            print(f"tutorial-app: benchmark failed: {exc}", file=sys.stderr)
            return EXIT_FAILED
        print(f"{score:.1f} MH/s")
        return EXIT_OK
    return _run(parser, args, server_env)


def _warn(text: str) -> None:
    print(f"tutorial-app: warning: {text}", file=sys.stderr)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, server_env: dict[str, str]) -> int:
    problem = _check_run_args(args)
    if problem:
        parser.error(problem)
    remote = args.requestor is not None
    cores = engine.usable_workers()
    requested = args.providers
    if requested is not None and requested > args.subtasks:
        _warn(f"--providers {requested} is more than --subtasks {args.subtasks}; using {args.subtasks}")
        requested = args.subtasks
    providers, workers = default_split(args.subtasks, 1 if remote else requested, args.workers, cores)
    if not remote and (providers > cores or workers > cores):
        _warn(f"{providers} provider(s) x {workers} worker(s) on {cores} usable core(s): "
              f"they take turns, no faster than {cores} worker(s)")
    kernel = get_kernel(engine.default_kernel())
    run_rate = kernel.rate_estimate * min(providers * workers, cores)
    expected = expected_run_seconds(args.difficulty, args.subtasks, run_rate)
    if expected > ABSURD_RUN_SECONDS:
        _warn(f"difficulty {args.difficulty} needs about 2^{args.difficulty} nonces per subtask: at about "
              f"{format_rate(run_rate)} this run is expected to take "
              f"{format_duration(expected)}; Ctrl-C stops it")
    show_logs = args.verbose or LOG_LEVEL_ENV in server_env
    scratch = None
    if remote:
        servers: Servers = RemoteServers(args.requestor, args.requestor_dir, args.provider, args.provider_dir)
    else:
        scratch = scratch_dir(None, scratch_need_bytes(
            args.input_file.stat().st_size, args.subtasks, args.keep_work_dirs),
            claim=not args.keep_work_dirs)
        servers = LocalServers(scratch, workers, env=server_env,
                               keep_work_dirs=args.keep_work_dirs)
    bar = None if args.json else ProgressBar(args.subtasks)

    def log_line(text: str) -> None:
        if bar is not None:
            bar.message(text)
        else:
            print(text, file=sys.stderr)

    run = TaskRun(
        servers,
        input_file=args.input_file,
        difficulty=args.difficulty,
        subtasks=args.subtasks,
        providers=providers,
        out_dir=args.out,
        progress=bar.update if bar else None,
        subtask_timeout=args.subtask_timeout,
        provider_rate_hint=run_rate / providers,  # what each gets while all compute
        log_lines=log_line if show_logs else None,
    )
    if not args.json:
        where = "remote app servers" if remote else f"{providers} provider(s) x {workers} worker(s)"
        print(f"task {run.task_id}:\n  {args.subtasks} subtask(s) at difficulty {args.difficulty} "
              f"on {where}", file=sys.stderr)
    try:
        # uvloop, as the app servers run: the node's many short gRPC calls cost
        # it less CPU, which at high difficulty is CPU the providers lack.
        exit_code = run_loop(_drive(run))
    finally:
        if bar:
            bar.close()
        if scratch is not None:
            if args.keep_work_dirs:
                print(f"work dirs and logs kept in {scratch}", file=sys.stderr)
            else:
                shutil.rmtree(scratch, ignore_errors=True)
    report = run.report()
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for line in format_table(report):
            print(line)
        if report.error:
            print(f"error: {report.error}", file=sys.stderr)
    if exit_code == EXIT_OK and not report.ok:
        exit_code = EXIT_FAILED
    return exit_code


def _check_run_args(args: argparse.Namespace) -> str | None:
    if not args.input_file.is_file():
        return f"INPUT_FILE {args.input_file} is not a readable file"
    try:
        with open(args.input_file, "rb") as f:
            data = f.read(meta.MAX_INPUT_BYTES + 1)
    except OSError as exc:
        return f"cannot read INPUT_FILE {args.input_file}: {exc.strerror}"
    # The requestor's own limits, checked before any server starts.
    if len(data) > meta.MAX_INPUT_BYTES:
        return f"INPUT_FILE {args.input_file} is larger than {meta.MAX_INPUT_BYTES} bytes"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"INPUT_FILE {args.input_file} is not UTF-8 text: {exc}"
    if args.subtasks > meta.MAX_PARTS:
        return f"--subtasks must be at most {meta.MAX_PARTS}, got {args.subtasks}"
    remote = [args.requestor, args.requestor_dir, args.provider, args.provider_dir]
    if any(v is not None for v in remote) and any(v is None for v in remote):
        return "--requestor, --requestor-dir, --provider and --provider-dir go together"
    try:
        check_out_dir(args.out)
        if args.provider_dir is not None:
            check_provider_dir(args.provider_dir)
    except (OutDirError, ForeignDirectoryError) as exc:
        return str(exc)
    return None


async def _drive(run: TaskRun) -> int:
    """Run the task; SIGINT and SIGTERM cancel it, which stops every app server."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        # Only the first signal cancels: another one would interrupt the
        # shutdown it started (bounded by the runner's timeouts) and leave
        # app servers running.
        if len(received) == 1:
            run.note_interrupt(f"interrupted by {signal.Signals(signum).name}")
            main.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await run.run()
    except asyncio.CancelledError:
        if not received:
            raise
        return 128 + received[0]
    except RunError:
        return EXIT_FAILED
    except Exception:  # every app server is already stopped; the report says what broke
        logging.getLogger(__name__).info("run failed", exc_info=True)
        return EXIT_FAILED
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
            if received:
                # Stopping is done: another signal (an impatient second Ctrl-C)
                # must not turn the orderly exit into a KeyboardInterrupt.
                signal.signal(signum, signal.SIG_IGN)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
