"""The e2e benchmark's ceiling: the share of the pool's rate the tail alone leaves."""
from __future__ import annotations

import pytest

from bench.e2e import tail_bound


@pytest.mark.timeout(30)
def test_one_provider_has_no_tail() -> None:
    assert tail_bound(8, 1, trials=500) == pytest.approx(1.0)


@pytest.mark.timeout(30)
def test_the_tail_costs_less_the_more_subtasks_share_the_providers() -> None:
    few, some, many = (tail_bound(n, 2, trials=4000) for n in (2, 8, 100))
    assert 0.5 < few < some < many < 1.0
    assert 0.88 < some < 0.94  # 8 subtasks on 2 providers: the figure quoted for bench.e2e
