"""Records the engine returns to its callers."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Solution:
    """The smallest valid nonce of a search and what it cost."""

    nonce: int
    digest: str  # hex, lower case
    hashes: int  # nonces tried by all workers together
    seconds: float  # wall time of the search, pool start excluded
    workers: int
    kernel: str


@dataclass(frozen=True)
class Progress:
    """A running search's work so far: from the search's progress callback or Supervisor.progress()."""

    hashes: int
    seconds: float
    rate: float  # hashes per second since the search began
