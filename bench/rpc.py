"""The requestor app server over real gRPC: call latency, a NextSubtask burst, memory.

    python -m bench.rpc [--sequential N] [--burst N] [--rss-calls N] [--json]

One requestor process (our entrypoint, as a node starts it) on loopback:
- N sequential HasPendingSubtasks calls, p50 and p99 latency;
- a burst of concurrent NextSubtask calls (50 more than the task has parts),
  counting the parts handed out twice (must be 0);
- the server's RSS before and after many calls (it must not grow with them).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import psutil
from golem_task_api.client import RequestorAppClient
from golem_task_api.dirutils import RequestorDir
from golem_task_api.services import SubprocessTaskApiService, find_free_port

from tutorial_app.servers import app_argv


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(work: Path, sequential: int, burst: int, rss_calls: int) -> dict[str, Any]:
    """Run the three measurements against one requestor server in ``work``."""
    service = SubprocessTaskApiService(work, app_argv(work), log_path=work / "requestor.log")
    client = await RequestorAppClient.create(service, port=find_free_port())
    try:
        task_id = "bench"
        task_dir = RequestorDir(work).task_dir(task_id)
        task_dir.prepare()
        (task_dir.task_inputs_dir / "input.txt").write_text("bench.rpc input\n")
        await client.create_task(task_id, burst, {"difficulty": 1, "resources": ["input.txt"]})

        latencies = []
        for _ in range(sequential):
            started = time.perf_counter()
            await client.has_pending_subtasks(task_id)
            latencies.append((time.perf_counter() - started) * 1000)

        calls = burst + 50
        started = time.perf_counter()
        answers = await asyncio.gather(*(
            client.next_subtask(task_id, f"s{i}", f"node{i % 7}") for i in range(calls)))
        burst_seconds = time.perf_counter() - started
        assigned = [f"s{i}" for i, subtask in enumerate(answers) if subtask is not None]
        texts = set()
        for sid in assigned:
            with zipfile.ZipFile(task_dir.subtask_inputs_dir / f"{sid}.zip") as zf:
                texts.add(zf.read(sid))

        server = psutil.Process(service.pid)
        rss_before = server.memory_info().rss
        for _ in range(rss_calls):
            await client.has_pending_subtasks(task_id)
        rss_after = server.memory_info().rss
    finally:
        await client.shutdown()
    return {
        "sequential_calls": sequential,
        "latency_ms_p50": round(statistics.median(latencies), 3),
        "latency_ms_p99": round(_percentile(latencies, 0.99), 3),
        "burst_calls": calls,
        "burst_parts": burst,
        "burst_assigned": len(assigned),
        "burst_double_assignments": len(assigned) - len(texts),
        "burst_seconds": round(burst_seconds, 3),
        "rss_calls": rss_calls,
        "rss_mib_before": round(rss_before / 2**20, 1),
        "rss_mib_after": round(rss_after / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequential", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=250)
    parser.add_argument("--rss-calls", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rpc-") as tmp:
        result = asyncio.run(measure(Path(tmp), args.sequential, args.burst, args.rss_calls))
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['sequential_calls']} sequential HasPendingSubtasks: "
          f"p50 {result['latency_ms_p50']} ms, p99 {result['latency_ms_p99']} ms")
    print(f"NextSubtask burst: {result['burst_calls']} concurrent calls for {result['burst_parts']} parts, "
          f"{result['burst_assigned']} assigned, {result['burst_double_assignments']} double, "
          f"{result['burst_seconds']} s")
    print(f"requestor RSS over {result['rss_calls']} calls: "
          f"{result['rss_mib_before']} -> {result['rss_mib_after']} MiB")


if __name__ == "__main__":
    main()
