"""A wall-time budget for one notebook cell inside the box: SIGALRM interrupts it (issue 13)."""

from __future__ import annotations

import signal
from typing import Any


class CellTimeLimit(KeyboardInterrupt):
    """Raised in a cell that ran past its time budget, as Jupyter's interrupt button raises KeyboardInterrupt.

    A KeyboardInterrupt, so that ``except Exception`` in the cell does not swallow it and a training
    loop written to stop cleanly on an interrupt does so here too.
    """


class CellAlarm:
    """Interrupts the running cell when its wall-time budget is spent (SIGALRM from setitimer, issue 13).

    A signal handler runs between bytecodes: a pure-Python loop or a sleep is interrupted at once, one
    long operation in compiled code only when it returns. If the cell catches the interrupt and goes
    on, it is interrupted again every REPEAT_S. The grader's own deadline (budget plus a grace) is the
    backstop for a cell that never lets go: it kills the worker. No setitimer (Windows): no interrupt,
    only the backstop.
    """

    REPEAT_S = 0.5

    def __init__(self) -> None:
        self.armed = False
        self.fired = False
        self.available = hasattr(signal, "setitimer")

    def arm(self, budget_s: float | None) -> None:
        self.fired = False
        if not self.available or budget_s is None:
            return
        self.armed = True
        signal.signal(signal.SIGALRM, self._ring)
        signal.setitimer(signal.ITIMER_REAL, max(float(budget_s), 0.001))

    def disarm(self) -> None:
        self.armed = False  # first: a signal already on its way finds the alarm off
        if self.available:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def _ring(self, signum: int, frame: Any) -> None:
        if not self.armed:
            return
        self.fired = True
        signal.setitimer(signal.ITIMER_REAL, self.REPEAT_S)
        raise CellTimeLimit("the cell's time budget is spent")
