"""The store against a simple model, over random sequences of node calls (hypothesis)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tutorial_app.store import (
    DuplicateSubtaskError, Outcome, PartState, SubtaskState, TaskStore, UnknownSubtaskError, Verdict,
)

PARTS = 3
IDS = st.sampled_from([f"s{i}" for i in range(10)])
NODES = st.sampled_from(["n1", "n2"])


class StoreModel(RuleBasedStateMachine):
    """Model: which subtask holds each part, and each subtask's state."""

    @initialize()
    def create(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="store-model-"))
        self.store = TaskStore.create(self.dir, difficulty=1, resource="r", input_text="t",
                                      salts=[f"{i}" for i in range(PARTS)])
        self.holder: dict[int, str | None] = dict.fromkeys(range(PARTS))
        self.verified_parts: set[int] = set()
        self.state: dict[str, SubtaskState] = {}
        self.part_of: dict[str, int] = {}
        self.node_of: dict[str, str] = {}
        self.aborted = False

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def _pending(self) -> list[int]:
        return [p for p, h in self.holder.items() if h is None and p not in self.verified_parts]

    @rule(sid=IDS, node=NODES)
    def assign(self, sid: str, node: str) -> None:
        if sid in self.state:
            if node != self.node_of[sid]:
                try:
                    self.store.assign(sid, node)
                except DuplicateSubtaskError:
                    return
                raise AssertionError("a repeated id from another node was accepted")
            # A retry from the same node answers as the first call and changes nothing.
            again = self.store.assign(sid, node)
            assert again is not None and again.retry and again.part == self.part_of[sid]
            return
        got = self.store.assign(sid, node)
        pending = self._pending()
        if self.aborted or not pending:
            assert got is None
            return
        assert got is not None and got.part == min(pending) and not got.retry
        self.holder[got.part] = sid
        self.state[sid] = SubtaskState.ASSIGNED
        self.part_of[sid] = got.part
        self.node_of[sid] = node

    @rule(sid=IDS, outcome=st.sampled_from(list(Outcome)))
    def settle(self, sid: str, outcome: Outcome) -> None:
        if sid not in self.state:
            try:
                self.store.settle(sid, lambda a: Verdict(outcome, "x"))
            except UnknownSubtaskError:
                return
            raise AssertionError("an unknown id was settled")
        verdict = self.store.settle(sid, lambda a: Verdict(outcome, "x"))
        if self.state[sid] is not SubtaskState.ASSIGNED:
            expected = Outcome.SUCCESS if self.state[sid] is SubtaskState.VERIFIED else Outcome.FAILURE
            assert verdict.outcome is expected
            return
        assert verdict.outcome is outcome
        part = self.part_of[sid]
        if outcome is Outcome.SUCCESS:
            self.state[sid] = SubtaskState.VERIFIED
            self.verified_parts.add(part)
        elif outcome is Outcome.FAILURE:
            self.state[sid] = SubtaskState.FAILED
            self.holder[part] = None

    @rule(sids=st.lists(IDS, max_size=3))
    def discard(self, sids: list[str]) -> None:
        if any(s not in self.state for s in sids):
            try:
                self.store.discard(sids)
            except UnknownSubtaskError:
                return
            raise AssertionError("an unknown id was discarded")
        expected = [s for s in dict.fromkeys(sids)
                    if self.state[s] in (SubtaskState.ASSIGNED, SubtaskState.VERIFIED)]
        assert self.store.discard(sids) == expected
        for s in expected:
            part = self.part_of[s]
            self.state[s] = SubtaskState.DISCARDED
            self.verified_parts.discard(part)
            if self.holder[part] == s:
                self.holder[part] = None

    @rule(sid=IDS)
    def abort_subtask(self, sid: str) -> None:
        if sid not in self.state:
            return
        changed = self.store.abort_subtask(sid)
        assert changed == (self.state[sid] is SubtaskState.ASSIGNED)
        if changed:
            self.state[sid] = SubtaskState.ABORTED
            self.holder[self.part_of[sid]] = None

    @rule()
    def abort_task(self) -> None:
        self.store.abort_task()
        self.aborted = True
        for sid, state in self.state.items():
            if state is SubtaskState.ASSIGNED:
                self.state[sid] = SubtaskState.ABORTED
                self.holder[self.part_of[sid]] = None

    @invariant()
    def agrees_with_model(self) -> None:
        if not hasattr(self, "store"):
            return
        subtasks = {s.subtask_id: s.state for s in self.store.subtasks()}
        assert subtasks == self.state
        for part in self.store.parts():
            if part.index in self.verified_parts:
                assert part.state is PartState.VERIFIED
            elif self.holder[part.index] is not None:
                assert (part.state, part.subtask_id) == (PartState.ASSIGNED, self.holder[part.index])
            else:
                assert part.state is PartState.PENDING
        # No part is ever held by two live subtasks.
        live = [self.part_of[s] for s, st_ in self.state.items()
                if st_ in (SubtaskState.ASSIGNED, SubtaskState.VERIFIED)]
        assert len(live) == len(set(live))
        assert self.store.has_pending() == (not self.aborted and bool(self._pending()))


StoreModel.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
test_store_model = StoreModel.TestCase
