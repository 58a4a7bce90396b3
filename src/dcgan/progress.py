"""Progress: one way to make a progress bar (on stderr, so stdout stays for results), and a run's clock."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any


def progress_bar(
    total: int | None, desc: str = "", enabled: bool = True, unit: str = "img", leave: bool = False, **kwargs: Any
) -> Any:
    """A tqdm bar on stderr (a no-op one when not ``enabled``)."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc or None,
        unit=unit,
        disable=not enabled,
        file=sys.stderr,
        leave=leave,
        dynamic_ncols=True,
        **kwargs,
    )


class RunClock:
    """The wall time of a run: when it started, its budget, and its speed measured past the first steps.

    The first ``warmup`` steps are left out of the speed (they include one-off set-up: allocations, oneDNN
    kernel choice), so an estimate never reads hours at the first tick.
    """

    def __init__(
        self, budget: float, started: float, warmup: int = 3, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.budget, self.started, self.warmup, self.clock = budget, started, warmup, clock
        self.seen = 0
        self.mark: tuple[int, float] | None = None  # (steps seen, time) when measuring began
        self.last: tuple[int, float] | None = None

    def tick(self) -> None:
        """One step done."""
        self.seen += 1
        now = self.clock()
        if self.seen == self.warmup:
            self.mark = (self.seen, now)
        self.last = (self.seen, now)

    def steps_per_second(self) -> float | None:
        if self.mark is None or self.last is None or self.last[0] - self.mark[0] < 1:
            return None
        return (self.last[0] - self.mark[0]) / max(self.last[1] - self.mark[1], 1e-9)

    def elapsed(self) -> float:
        return self.clock() - self.started

    def left(self) -> float:
        """Seconds of the budget left (infinity without one)."""
        return self.budget - self.elapsed() if self.budget else float("inf")

    def eta(self, steps_left: int) -> float | None:
        """Seconds until the run ends: its steps at the measured speed, or the budget, whichever comes first."""
        rate = self.steps_per_second()
        by_steps = steps_left / rate if rate else None
        if by_steps is None:
            return None if not self.budget else self.left()
        return min(by_steps, self.left())
