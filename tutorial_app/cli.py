"""The ``tutorial-app`` command: run a whole task locally, describe the app, benchmark."""
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

from tutorial_app import descriptor, meta
from tutorial_app.progress import ProgressBar, format_rate
from tutorial_app.runner import (
    LocalServers,
    RemoteServers,
    RunError,
    RunReport,
    Servers,
    TaskRun,
    default_split,
    parse_address,
    scratch_dir,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
# Shell convention: 128 + signal number.
EXIT_SIGINT = 128 + signal.SIGINT
EXIT_SIGTERM = 128 + signal.SIGTERM


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _difficulty(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= 256:
        raise argparse.ArgumentTypeError(f"must be between 0 and 256, got {value}")
    return value


def _address(text: str) -> tuple[str, int]:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tutorial-app",
        description="The Golem Task API proof-of-work app.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the node does")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run a whole task on this machine (requestor + providers over gRPC)",
        description="Play the Golem node locally: create a task from INPUT_FILE, compute "
        "every subtask on short-lived provider app servers, verify, and collect results.",
    )
    run.add_argument("input_file", type=Path, metavar="INPUT_FILE", help="UTF-8 text to prove work on")
    run.add_argument("--difficulty", "-d", type=_difficulty, required=True,
                     help="leading zero bits the digest needs (0..256; 20 takes about a second per subtask)")
    run.add_argument("--subtasks", "-n", type=_positive, default=4, help="subtasks to split into (default 4)")
    run.add_argument("--providers", "-p", type=_positive, default=None,
                     help="provider app servers at a time (default: share the usable cores)")
    run.add_argument("--workers", "-w", type=_positive, default=None,
                     help="engine worker processes per provider (default: usable cores / providers)")
    run.add_argument("--out", type=Path, default=Path("tutorial-app-out"),
                     help="where results go (default ./tutorial-app-out)")
    run.add_argument("--json", action="store_true", help="print a machine-readable summary instead of a table")
    run.add_argument("--keep-work-dirs", action="store_true", help="keep the app servers' work dirs")
    remote = run.add_argument_group(
        "app servers elsewhere",
        "drive already-running app servers (e.g. containers) through shared work dirs",
    )
    remote.add_argument("--requestor", type=_address, metavar="HOST:PORT")
    remote.add_argument("--requestor-dir", type=Path, metavar="DIR", help="the requestor's work dir as seen here")
    remote.add_argument("--provider", type=_address, metavar="HOST:PORT")
    remote.add_argument("--provider-dir", type=Path, metavar="DIR", help="the provider's work dir as seen here")

    commands.add_parser("descriptor", help="print the app definition a Golem node loads to publish the app")
    bench = commands.add_parser("benchmark", help="print this machine's benchmark score")
    bench.add_argument("--workers", "-w", type=_positive, default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tutorial-app`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "descriptor":
        print(json.dumps(descriptor.app_descriptor(), indent=2))
        return EXIT_OK
    if args.command == "benchmark":
        score = engine.benchmark(workers=args.workers)
        print(f"{score:.1f}")
        return EXIT_OK
    return _run(parser, args)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    problem = _check_run_args(args)
    if problem:
        parser.error(problem)
    remote = args.requestor is not None
    providers, workers = default_split(
        args.subtasks, 1 if remote else args.providers, args.workers, engine.usable_cores()
    )
    scratch = None
    if remote:
        servers: Servers = RemoteServers(args.requestor, args.requestor_dir, args.provider, args.provider_dir)
    else:
        scratch = scratch_dir(None)
        servers = LocalServers(scratch, workers)
    bar = None if args.json else ProgressBar(args.subtasks)
    run = TaskRun(
        servers,
        input_file=args.input_file,
        difficulty=args.difficulty,
        subtasks=args.subtasks,
        providers=providers,
        out_dir=args.out,
        progress=bar.update if bar else None,
    )
    if not args.json:
        where = "remote app servers" if remote else f"{providers} provider(s) x {workers} worker(s)"
        print(f"task {run.task_id}: {args.subtasks} subtask(s) at difficulty {args.difficulty} "
              f"on {where}", file=sys.stderr)
    try:
        exit_code, error = asyncio.run(_drive(run))
    finally:
        if bar:
            bar.close()
        if scratch is not None and not args.keep_work_dirs:
            shutil.rmtree(scratch, ignore_errors=True)
    report = run.report()
    if args.json:
        summary = report.to_json()
        if error:
            summary["error"] = error
        print(json.dumps(summary, indent=2))
    else:
        _print_table(report)
        if error:
            print(f"error: {error}", file=sys.stderr)
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
    if args.out.exists() and not args.out.is_dir():
        return f"--out {args.out} exists and is not a directory"
    # Fail before any work, not at the first result: a container's bind-mounted
    # out dir is often owned by another uid.
    existing = next(p for p in (args.out.absolute(), *args.out.absolute().parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"--out {args.out}: {existing} is not writable by uid {os.getuid()}"
    return None


async def _drive(run: TaskRun) -> tuple[int, str | None]:
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
            main.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await run.run()
    except asyncio.CancelledError:
        if not received:
            raise
        name = signal.Signals(received[0]).name
        return 128 + received[0], f"interrupted by {name}; every app server was stopped"
    except RunError as exc:
        return EXIT_FAILED, str(exc)
    except Exception as exc:  # every app server is already stopped; say what broke, no traceback
        logging.getLogger(__name__).info("run failed", exc_info=True)
        return EXIT_FAILED, f"the run failed: {type(exc).__name__}: {exc}"
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return EXIT_OK, None


def _print_table(report: RunReport) -> None:
    rows = [(r.subtask_id, str(r.nonce), r.digest, f"{r.seconds:.2f}") for r in report.subtasks]
    header = ("subtask", "nonce", "digest", "seconds")
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    print(line)
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    verified = len(report.subtasks)
    hashes = sum(r.nonce + 1 for r in report.subtasks)
    rate = hashes / report.seconds if report.seconds > 0 else 0.0
    print(
        f"\n{verified}/{report.subtasks_total} subtasks verified in {report.seconds:.1f} s "
        f"(at least {hashes} hashes, {format_rate(rate)})"
    )
    if report.subtasks:
        print(f"results: {report.out_dir.resolve()}")
    if report.failures:
        print(f"{len(report.failures)} attempt(s) failed and were re-issued:")
        for failure in report.failures:
            print(f"  {failure}")


if __name__ == "__main__":
    sys.exit(main())
