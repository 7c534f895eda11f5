"""The one place a run's model calls are counted and capped.

Every call the provider is about to make (first asks, re-asks, halves, fallbacks) takes a
slot here first. Caps (each optional): `review.max_calls` calls and `review.max_usd` dollars
per run. Past a cap the call is not made, and the files it carried are NOT reviewed (cause:
budget), which fails closed like any other unreviewed file: never a silent pass.

The dollar cap is checked before a call with its estimated price (input at the model's input
rate, the answer and thinking at the output rate) and kept with what the answer's usage
metadata then says it cost. A call to a model without a known price cannot be kept under a
dollar cap, so with `max_usd` set it is not made.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

BUDGET_REASON = "not reviewed: the run's model budget is spent"


@dataclass(frozen=True)
class BudgetState:
    calls: int
    usd: float
    max_calls: int | None
    max_usd: float | None
    refused: int  # calls not made because of a cap


class CallBudget:
    def __init__(self, max_calls: int | None = None, max_usd: float | None = None) -> None:
        self.max_calls = max_calls
        self.max_usd = max_usd
        self._calls = 0
        self._usd = 0.0
        self._reserved = 0.0
        self._refused = 0
        self._lock = threading.Lock()

    def take(self, est_usd: float | None) -> str | None:
        """Reserve one call; None when granted, else why not (the files' reason)."""
        with self._lock:
            if self.max_calls is not None and self._calls >= self.max_calls:
                self._refused += 1
                return f"{BUDGET_REASON} (review.max_calls = {self.max_calls})"
            if self.max_usd is not None:
                if est_usd is None:
                    self._refused += 1
                    return f"{BUDGET_REASON} (the model has no known price; review.max_usd is set)"
                if self._usd + self._reserved + est_usd > self.max_usd:
                    self._refused += 1
                    return f"{BUDGET_REASON} (review.max_usd = {self.max_usd:g})"
                self._reserved += est_usd
            self._calls += 1
            return None

    def settle(self, est_usd: float | None, actual_usd: float | None) -> None:
        """Replace a granted call's reservation by what it cost (its estimate if unknown)."""
        with self._lock:
            if self.max_usd is not None and est_usd is not None:
                self._reserved = max(0.0, self._reserved - est_usd)
            self._usd += actual_usd if actual_usd is not None else (est_usd or 0.0)

    def release(self, est_usd: float | None) -> None:
        """A granted call that was never billed (refused by the server before any work)."""
        with self._lock:
            if self.max_usd is not None and est_usd is not None:
                self._reserved = max(0.0, self._reserved - est_usd)

    @property
    def state(self) -> BudgetState:
        with self._lock:
            return BudgetState(self._calls, self._usd, self.max_calls, self.max_usd, self._refused)


def call_cap(planned_calls: int) -> int:
    """The automatic cap on model requests for a run that planned `planned_calls` calls:
    2 × planned + 4. Every generateContent request counts: first tries, the SDK's retries of
    5xx and timeouts, 429 waits, re-asks of missing or malformed files and halved unusable
    answers. An ordinary run needs `planned` (the 50-file first review: 2 of 8); a model that
    answers garbage stops there instead of re-asking file by file (55 calls for 14 files)."""
    return 2 * max(planned_calls, 0) + 4
