"""Provider app servers started ahead of need, so no subtask waits for one to boot.

A provider serves one request, so each subtask needs a fresh one. The pool
keeps up to ``ahead`` providers starting or ready while others compute;
when a subtask is issued, one of them is usually serving already, and the
per-subtask start-up cost hides behind the work of the others.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from golem_task_api.client import HEALTH_TIMEOUT, ProviderAppClient

from tutorial_app.servers import ConnectedService, Provider, Servers, log_tail

log = logging.getLogger(__name__)

START_FAILURES_IN_A_ROW = 3
"""Providers failing to start one after another before the run gives up."""


class ProviderStartError(RuntimeError):
    """Providers keep failing to start: the run cannot go on."""


@dataclass
class ReadyProvider:
    """A provider app server answering SERVING, not yet given a subtask."""

    provider: Provider
    client: ProviderAppClient


def describe_start_failure(provider: Provider, exc: BaseException) -> str:
    """One line: which provider, why it did not start, and the end of its log."""
    why = str(exc) or type(exc).__name__
    service = provider.service
    if isinstance(service, ConnectedService) and service.problem:
        why = service.problem
    tail = log_tail(provider.log_path)
    return f"{provider.label} did not start: {why}" + (f"; its log ends: {tail}" if tail else "")


async def _shutdown(ready: ReadyProvider, timeout: float) -> None:
    try:
        await ready.client.shutdown(timeout)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the service is stopped whatever the call raised
        log.debug("shutting an idle provider down: %r", exc)


class ProviderPool:
    """Starts providers through ``servers``; `acquire` hands out serving ones."""

    def __init__(
        self,
        servers: Servers,
        ahead: int,
        on_start: Callable[[Provider], None] | None = None,
        health_timeout: float = HEALTH_TIMEOUT,
    ) -> None:
        self.servers = servers
        self.ahead = ahead if servers.providers_ahead else 0
        self.wanted = ahead
        """How many more providers the run may still use; the pool starts no more."""
        self.on_start = on_start or (lambda provider: None)
        self.health_timeout = health_timeout
        # Local starts can fail by chance; the one remote provider failing
        # to start will fail again, so the run gives up at once.
        self.max_failed_starts = START_FAILURES_IN_A_ROW if servers.providers_ahead else 1
        self.failures: list[str] = []
        self._in_a_row = 0
        self._slot = 0
        self._starting: set[asyncio.Task[ReadyProvider]] = set()
        self._ready: deque[ReadyProvider] = deque()

    def fill(self) -> None:
        """Start providers until ``min(ahead, wanted)`` are starting or ready."""
        while len(self._starting) + len(self._ready) < min(self.ahead, self.wanted):
            self._start_one()

    def _start_one(self) -> None:
        self._starting.add(asyncio.create_task(self._start(self._slot)))
        self._slot += 1

    async def _start(self, slot: int) -> ReadyProvider:
        provider = self.servers.provider(slot)
        self.on_start(provider)
        try:
            client = await ProviderAppClient.create(
                provider.service, port=provider.port, health_timeout=self.health_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise ProviderStartError(describe_start_failure(provider, exc)) from exc
        return ReadyProvider(provider, client)

    async def acquire(self) -> ReadyProvider:
        """A serving provider; `ProviderStartError` after too many failed starts in a row."""
        while not self._ready:
            if not self._starting:
                self._start_one()
            done, _ = await asyncio.wait(self._starting, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task not in self._starting:
                    continue  # another acquire() waiting on the same start took it
                self._starting.discard(task)
                try:
                    self._ready.append(task.result())
                    self._in_a_row = 0
                except ProviderStartError as exc:
                    log.warning("%s", exc)
                    self.failures.append(str(exc))
                    self._in_a_row += 1
                    if self._in_a_row >= self.max_failed_starts:
                        raise ProviderStartError(
                            f"{self._in_a_row} provider(s) in a row failed to start; last: {exc}"
                        ) from None
        ready = self._ready.popleft()
        self.fill()
        return ready

    async def close(self, timeout: float) -> None:
        """Stop every provider still starting or waiting for a subtask."""
        for task in self._starting:
            task.cancel()
        results = await asyncio.gather(*self._starting, return_exceptions=True)
        self._starting.clear()
        ready = [r for r in results if isinstance(r, ReadyProvider)] + list(self._ready)
        self._ready.clear()
        for outcome in await asyncio.gather(
                *(_shutdown(r, timeout) for r in ready), return_exceptions=True):
            if isinstance(outcome, BaseException):
                log.warning("stopping an idle provider: %s", outcome)
        with contextlib.suppress(Exception):
            for r in ready:
                self.servers.release(r.provider)
