"""Single-thread rate of each native scan kernel against its limits.

Run as ``python -m bench.native_kernels [--seconds S] [--prefix-length N] [--json]``,
or ``python -m bench.native_kernels --layouts [--kernel K]`` for one kernel's
rate at every prefix length 0..300, as given and as shaped by
``engine.layout.one_block_salt_length`` (the requestor's salts), with the
worst layout's rate over the best.

Prints nonces/s for every kernel in ``engine._native.kernels()``, for a
hashlib midstate loop in pure Python (the engine's fallback kernel), and the
SHA-256 block rate of hashlib over a large buffer (bytes/s / 64: the ceiling
for one compression per nonce), plus ``openssl speed`` when openssl exists.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

# The engine's own fallback kernel: the fair comparison.
from engine.kernels import python_scan
from engine.layout import one_block_salt_length

try:
    from engine import _native
except ImportError:  # the extension is optional
    _native = None

# No digest is below an all-zero target: every scan runs its whole range.
_IMPOSSIBLE = bytes(32)

# Every measurement runs on one thread, so process CPU time is that thread's
# time: on a shared machine it counts the work done, not the waiting.
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
_clock = CLOCKS["cpu"]


@dataclass(frozen=True)
class Rate:
    """A measured rate: `count` units in `seconds`."""

    name: str
    count: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.count / self.seconds


def _timed(name: str, run: Callable[[int], object], seconds: float, first: int) -> Rate:
    """Grow the batch until one run lasts about `seconds`; the median of five runs."""
    count = first
    while True:
        t0 = _clock()
        run(count)
        elapsed = _clock() - t0
        if elapsed >= seconds / 4:
            break
        count *= 4
    count = max(1, int(count * seconds / elapsed / 5))
    runs = []
    for _ in range(5):
        t0 = _clock()
        run(count)
        runs.append(_clock() - t0)
    return Rate(name, count, statistics.median(runs))


def measure_kernel(kernel: str, prefix: bytes, seconds: float, start: int = 10**9) -> Rate:
    """Nonces per second of one native kernel on one thread."""
    return _timed(
        kernel,
        lambda n: _native.scan(prefix, start, start + n, _IMPOSSIBLE, kernel),
        seconds,
        first=1 << 16,
    )


def measure_python(prefix: bytes, seconds: float, start: int = 10**9) -> Rate:
    """Nonces per second of the pure-Python midstate loop."""
    return _timed(
        "python", lambda n: python_scan(prefix, start, start + n, _IMPOSSIBLE), seconds, first=1 << 12
    )


def measure_block_rate(seconds: float) -> Rate:
    """SHA-256 64-byte blocks per second of hashlib over a 16 MiB buffer."""
    buf = bytes(16 << 20)
    rate = _timed("hashlib blocks", lambda n: [hashlib.sha256(buf) for _ in range(n)], seconds, first=1)
    return Rate(rate.name, rate.count * len(buf) // 64, rate.seconds)


def openssl_block_rate() -> float | None:
    """Blocks per second from `openssl speed -bytes 8192 sha256`, if openssl is installed."""
    exe = shutil.which("openssl")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "speed", "-seconds", "1", "-bytes", "8192", "sha256"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    # Last line: "sha256   <rate>k" with the rate in thousands of bytes/s.
    match = re.search(r"^sha256\s+([\d.]+)k\s*$", out, re.MULTILINE)
    return float(match.group(1)) * 1000 / 64 if match else None


LAYOUT_LENGTHS = range(0, 301)
LAYOUT_MIN_SALT = 32  # the requestor's salt: 16 random bytes as hex


def layout_rates(kernel: str, start: int, count: int, runs: int = 5) -> dict[str, dict[int, float]]:
    """Nonces/s of `kernel` per prefix length, raw and shaped (salt appended), median of `runs`.

    Each run measures every layout once, so a busy spell of a shared
    machine slows many layouts a little rather than a few a lot.
    """
    prefixes: dict[tuple[str, int], bytes] = {}
    for length in LAYOUT_LENGTHS:
        raw = bytes(i % 251 for i in range(length))
        prefixes["raw", length] = raw
        prefixes["shaped", length] = raw + b"5" * one_block_salt_length(length, LAYOUT_MIN_SALT)
    samples: dict[tuple[str, int], list[float]] = {key: [] for key in prefixes}
    for _ in range(runs):
        for key, prefix in prefixes.items():
            t0 = _clock()
            _native.scan(prefix, start, start + count, _IMPOSSIBLE, kernel)
            samples[key].append(_clock() - t0)
    rates: dict[str, dict[int, float]] = {"raw": {}, "shaped": {}, "raw_tail": {}, "shaped_tail": {}}
    by_tail: dict[tuple[str, int], list[float]] = {}
    for (kind, length), times in samples.items():
        rates[kind][length] = count / statistics.median(times)
        # A layout is where the input ends in its last block: equal tails hash alike.
        by_tail.setdefault((kind + "_tail", len(prefixes[kind, length]) % 64), []).extend(times)
    for (kind, tail), times in sorted(by_tail.items()):
        rates[kind][tail] = count / statistics.median(times)
    return rates


def _spread(rates: dict[int, float], what: str = "prefix") -> str:
    worst = min(rates, key=rates.__getitem__)
    best = max(rates, key=rates.__getitem__)
    return (f"worst {rates[worst] / 1e6:7.2f} M/s ({what} {worst}), best {rates[best] / 1e6:7.2f} M/s "
            f"({what} {best}): worst/best {rates[worst] / rates[best]:5.3f}")


def main_layouts(kernel: str, start: int, count: int, as_json: bool) -> int:
    """Print the layout spread of one kernel."""
    rates = layout_rates(kernel, start, count)
    if as_json:
        print(json.dumps({"kernel": kernel, "start": start, "count": count, "clock": _clock.__name__,
                          "rates": rates}, indent=2))
        return 0
    print(f"kernel {kernel}, prefix lengths {LAYOUT_LENGTHS.start}..{LAYOUT_LENGTHS.stop - 1}, "
          f"nonces [{start}, {start + count}), median of 5, one thread")
    print(f"as given, per prefix length:    {_spread(rates['raw'])}")
    print(f"as given, per layout (len % 64): {_spread(rates['raw_tail'], 'tail')}")
    print(f"shaped (salt >= {LAYOUT_MIN_SALT}), per prefix length: {_spread(rates['shaped'])}")
    print(f"shaped, per layout (len % 64):   {_spread(rates['shaped_tail'], 'tail')}")
    one_block = {tail: rate for tail, rate in rates["raw_tail"].items() if tail + len(str(start + count)) + 9 <= 64}
    print(f"as given, one-block layouts only: {_spread(one_block, 'tail')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Measure and print every kernel's rate with its ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="target time per measurement")
    parser.add_argument("--prefix-length", type=int, default=32,
                        help="prefix bytes (> 46 puts the digits of a 10-digit nonce in a second block)")
    parser.add_argument("--no-openssl", action="store_true", help="skip the openssl speed reference")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                        help="cpu: process CPU time (default, steady on a shared machine); wall: elapsed time")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--layouts", action="store_true",
                        help="rate of one kernel at every prefix length 0..300, raw and shaped")
    parser.add_argument("--kernel", default=None, help="kernel for --layouts (default: the fastest)")
    parser.add_argument("--start", type=int, default=10**9, help="first nonce of --layouts scans")
    parser.add_argument("--count", type=int, default=1 << 19, help="nonces per --layouts scan")
    args = parser.parse_args(argv)
    global _clock
    _clock = CLOCKS[args.clock]
    if args.layouts:
        if _native is None:
            print("engine._native is not built: no native kernels", file=sys.stderr)
            return 1
        return main_layouts(args.kernel or _native.kernels()[0], args.start, args.count, args.json)

    prefix = bytes(i % 251 for i in range(args.prefix_length))
    blocks = measure_block_rate(args.seconds)
    python = measure_python(prefix, args.seconds)
    kernels = [measure_kernel(k, prefix, args.seconds) for k in (_native.kernels() if _native else ())]
    openssl = None if args.no_openssl else openssl_block_rate()

    if args.json:
        print(json.dumps({
            "prefix_length": args.prefix_length,
            "clock": args.clock,
            "hashlib_block_rate": blocks.per_second,
            "openssl_block_rate": openssl,
            "python_nonces_per_s": python.per_second,
            "kernels": {
                r.name: {**asdict(r), "nonces_per_s": r.per_second,
                         "vs_python": r.per_second / python.per_second,
                         "vs_block_rate": r.per_second / blocks.per_second}
                for r in kernels
            },
        }, indent=2))
        return 0

    print(f"prefix {args.prefix_length} bytes, nonces from 10**9 (10 digits), one thread, {args.clock} clock")
    print(f"{'SHA-256 block rate (hashlib)':32} {blocks.per_second / 1e6:8.2f} M blocks/s")
    if openssl is not None:
        print(f"{'SHA-256 block rate (openssl)':32} {openssl / 1e6:8.2f} M blocks/s")
    print(f"{'python kernel (midstate loop)':32} {python.per_second / 1e6:8.2f} M nonces/s")
    if _native is None:
        print("engine._native is not built: no native kernels")
    for r in kernels:
        print(f"{'kernel ' + r.name:32} {r.per_second / 1e6:8.2f} M nonces/s"
              f"   x{r.per_second / python.per_second:5.1f} python"
              f"   {100 * r.per_second / blocks.per_second:5.0f}% of block rate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
