"""The e2e benchmark's ceiling: the share of the pool's rate the tail alone leaves."""
from __future__ import annotations

import pytest

from bench.e2e import tail_bound


@pytest.mark.timeout(30)
def test_one_provider_on_every_core_has_no_tail() -> None:
    assert tail_bound(8, providers=1, workers=2, cores=2, trials=500) == pytest.approx(1.0)


@pytest.mark.timeout(30)
def test_one_worker_providers_lose_less_the_more_subtasks_share_them() -> None:
    few, some, many = (tail_bound(n, providers=2, workers=1, cores=2, trials=4000) for n in (2, 8, 100))
    assert 0.5 < few < some < many < 1.0
    assert 0.88 < some < 0.94  # 8 subtasks on 2 one-worker providers


@pytest.mark.timeout(30)
def test_providers_that_may_use_every_core_lose_nothing_at_the_tail() -> None:
    assert tail_bound(8, providers=2, workers=2, cores=2, trials=2000) == pytest.approx(1.0)
    # Two workers each on 4 cores: the last part alone leaves half of them idle.
    assert 0.8 < tail_bound(8, providers=4, workers=2, cores=4, trials=2000) < 1.0
