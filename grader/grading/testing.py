"""The pytest plugin hidden and visible tests are written against.

Test authors use ``@points``, ``@limits``, the ``submission`` and ``credit`` fixtures and the
``expect_*``/``assert_close`` helpers. The grader runs the tests in its own (trusted) process;
``submission.f(x)`` crosses into the sandbox and brings back plain data only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from grader.errors import SandboxFailure
from grader.grading.session import WorkerSession
from grader.sandbox.faults import SubmissionFault

__all__ = [
    "points", "limits", "expect_array", "expect_tuple", "expect_scalar", "assert_close",
    "relative_error", "in_hidden_test", "SubmissionFault",
]  # fmt: skip


def points(value: float, *, visible: bool = True) -> pytest.MarkDecorator:
    """Points a test is worth; ``visible=False`` hides its message from the student."""
    return pytest.mark.points(value, visible=visible)


def limits(*, call_timeout_s: float | None = None) -> pytest.MarkDecorator:
    """Per-test overrides of the assignment's limits."""
    return pytest.mark.grader_limits(call_timeout_s=call_timeout_s)


class SubmissionProxy:
    """``submission.name(*args)`` runs the student's ``name`` in the sandbox."""

    def __init__(self, session: WorkerSession, call_timeout_s: float | None, call_note: str = "") -> None:
        self._session, self._timeout, self._note = session, call_timeout_s, call_note

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._session.request("call", [args, kwargs], self._timeout, self._note, name=name)

        call.__name__ = name
        return call

    def run(self, probe: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``probe(student_module, *args, **kwargs)`` from probes.py inside the sandbox."""
        return self._session.request("probe", [args, kwargs], self._timeout, self._note, name=probe)

    def has(self, name: str) -> bool:
        """Whether the submission defines a callable ``name``."""
        return bool(self._session.request("has", None, self._timeout, name=name))


@dataclass
class Credit:
    """Partial credit within one test: ``credit.give(0.5, "accuracy 0.83 is in the 0.8 band")``."""

    fraction: float | None = None
    reason: str = ""

    def give(self, fraction: float, reason: str = "") -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"credit fraction must be within [0, 1], got {fraction}")
        self.fraction, self.reason = fraction, reason


@dataclass
class Outcome:
    """What the trusted side recorded for one test."""

    nodeid: str
    name: str
    max_score: float
    visible: bool
    status: str = "passed"
    score: float = 0.0
    message: str = ""
    duration_s: float = 0.0
    grader_problem: str = ""
    test_raised: str = ""
    max_call_s: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)


# Whether the running test is hidden from students: its messages reach students who never saw its
# inputs, so assert_close reports relative errors only (issue 11). True outside a grading run.
_IN_HIDDEN_TEST: ContextVar[bool] = ContextVar("grader_in_hidden_test", default=True)


def in_hidden_test() -> bool:
    """Whether the test now running is a hidden one (True when not in a grading run)."""
    return _IN_HIDDEN_TEST.get()


@dataclass
class GradingRun:
    """One submission's pass through the tests: what the trusted side recorded for it.

    ``hidden`` says whether the tests are hidden from students; None decides per test: hidden
    when its file lies in one of the box's secret folders (autograde_tests/<name>), or when the
    box has none (not known, so hidden).
    """

    session: WorkerSession
    hidden: bool | None = None
    # Per test name: (call timeout, how it was derived) from the reference's times (issue 20).
    call_limits: dict[str, tuple[float, str]] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    credit: dict[str, Credit] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(eq=False)  # pluggy keeps plugins in sets: identity hashing
class GradingPlugin:
    """Registered once per test suite; turns each run's test outcomes into scored Outcomes.

    The fixtures are bound at collection, so they live here and read the current GradingRun.
    """

    collection_problems: list[str] = field(default_factory=list)
    run: GradingRun | None = None

    def begin(self, run: GradingRun) -> None:
        self.run = run

    def end(self) -> None:
        self.run = None
        _IN_HIDDEN_TEST.set(True)

    def _current(self) -> GradingRun:
        if self.run is None:
            raise RuntimeError("a grader fixture was used outside a grading run")
        return self.run

    @pytest.fixture
    def submission(self, request: pytest.FixtureRequest) -> SubmissionProxy:
        run = self._current()
        relative = run.call_limits.get(request.node.name)
        if relative is not None:  # measured on this machine: replaces @limits and the spec's fixed limit
            return SubmissionProxy(run.session, relative[0], relative[1])
        marker = request.node.get_closest_marker("grader_limits")
        timeout = marker.kwargs.get("call_timeout_s") if marker else None
        return SubmissionProxy(run.session, timeout)

    @pytest.fixture
    def credit(self, request: pytest.FixtureRequest) -> Credit:
        return self._current().credit.setdefault(request.node.nodeid, Credit())

    @pytest.fixture
    def metric(self, request: pytest.FixtureRequest) -> Callable[[str, float], None]:
        """``metric("accuracy", 0.93)`` records a number in the report, for `grader calibrate`."""
        recorded = self._current().metrics.setdefault(request.node.nodeid, {})

        def record(name: str, value: float) -> None:
            recorded[name] = float(value)

        return record

    @pytest.fixture
    def grading_seed(self) -> int:
        """The seed of this grading run (the assignment's, or `calibrate`'s), for test data."""
        return self._current().session.seed

    def pytest_configure(self, config: pytest.Config) -> None:
        # A failed test's traceback in Python's own format, as --tb=native would give (that
        # option belongs to the terminal plugin, which is off): pytest's default long format
        # costs ~0.09 s per failed test, measured with cProfile (issue 20). Scores and
        # messages never use it; collection problems keep a whole traceback for the TA.
        config.option.tbstyle = "native"
        config.addinivalue_line("markers", "points(n, visible=True): points the test is worth")
        config.addinivalue_line("markers", "grader_limits(**limits): per-test limit overrides")

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_problems.append(f"{report.nodeid}: {report.longreprtext[-1500:]}")

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            if item.get_closest_marker("points") is None:
                self.collection_problems.append(f"{item.nodeid} has no @points(n) decorator")

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        run = self._current()
        run.session.test_faults.clear()
        run.session.test_returns.clear()
        run.session.test_call_max_s = 0.0
        run.started[item.nodeid] = time.monotonic()
        _IN_HIDDEN_TEST.set(_is_hidden(run, item))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self._record(self._current(), item, call, report)

    @staticmethod
    def _record(run: GradingRun, item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport) -> None:
        marker = item.get_closest_marker("points")
        max_score = float(marker.args[0]) if marker and marker.args else 0.0
        result = Outcome(
            nodeid=item.nodeid,
            name=item.name,
            max_score=max_score,
            visible=bool(marker.kwargs.get("visible", True)) if marker else True,
            duration_s=time.monotonic() - run.started.get(item.nodeid, time.monotonic()),
            metrics=run.metrics.get(item.nodeid, {}),
            max_call_s=run.session.test_call_max_s,
        )
        excinfo = call.excinfo
        faults = run.session.test_faults
        if faults:  # a call into the sandbox failed: that decides, whatever the test caught
            result.status, result.message = faults[0].status, faults[0].message
        elif report.skipped:
            result.status, result.message = "skipped", _skip_reason(report)
        elif excinfo is None:
            credit = run.credit.get(item.nodeid)
            fraction = 1.0 if credit is None or credit.fraction is None else credit.fraction
            result.score = round(max_score * fraction, 6)
            result.status = "passed" if fraction == 1.0 else "failed"
            result.message = credit.reason if credit else ""
        elif isinstance(excinfo.value, AssertionError | pytest.fail.Exception):
            result.status = "failed"
            result.message = str(excinfo.value).strip() or "an assertion failed (the test gave no message)"
            credit = run.credit.get(item.nodeid)
            if credit is not None and credit.fraction is not None:
                result.score = round(max_score * credit.fraction, 6)
        elif run.session.test_returns and not isinstance(excinfo.value, SandboxFailure):
            # Issue 14: the test raised while handling what the submission returned (np.allclose on
            # a wrong shape): the submission's failed test, with a message that names the value's
            # type and shape only; the exception itself is kept for the TA.
            function, value = run.session.test_returns[-1]
            result.status = "error"
            result.message = (
                f"your {function} returned {value}; the test could not use it ({excinfo.typename}). "
                "Check the type and shape of what it returns."
            )
            result.test_raised = f"{excinfo.typename}: {excinfo.value}"[:2000]
        else:
            result.status = "failed"
            kind = "the sandbox failed" if isinstance(excinfo.value, SandboxFailure) else "the test itself raised"
            result.grader_problem = f"{item.nodeid}: {kind}: {excinfo.typename}: {excinfo.value}"[:2000]
            result.message = "not graded: a problem in the grader, not in your code; your TA will rerun it"
        run.outcomes.append(result)


def _is_hidden(run: GradingRun, item: pytest.Item) -> bool:
    if run.hidden is not None:
        return run.hidden
    box_settings = getattr(run.session, "box_settings", None)
    secret_dirs = tuple(getattr(box_settings, "secret_dirs", ()))
    if not secret_dirs:
        return True
    path = Path(str(item.path)).resolve()
    return any(path.is_relative_to(Path(folder).resolve()) for folder in secret_dirs)


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return "skipped"


# ---------------------------------------------------------------- helpers for test authors


def expect_array(value: Any, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """The value as a float64 array, or an AssertionError saying what was wrong with it."""
    if type(value) is not np.ndarray:
        raise AssertionError(f"{name} should be a numpy array, but it is a {type(value).__name__}")
    if value.dtype.kind not in "biuf":
        raise AssertionError(f"{name} should hold real numbers, but its dtype is {value.dtype}")
    if shape is not None and value.shape != tuple(shape):
        raise AssertionError(f"{name} has shape {value.shape}, expected shape {tuple(shape)}")
    return value.astype(np.float64)


def expect_tuple(value: Any, name: str, length: int) -> tuple[Any, ...]:
    """The value as a tuple (a list is accepted) of ``length`` items."""
    if type(value) not in (tuple, list):
        raise AssertionError(f"{name} should return a tuple of {length} values, not a {type(value).__name__}")
    if len(value) != length:
        raise AssertionError(f"{name} should return {length} values, but it returned {len(value)}")
    return tuple(value)


def expect_scalar(value: Any, name: str) -> float:
    """The value as a float; a 0-d or one-element array is accepted."""
    if type(value) is np.ndarray and value.size == 1 and value.dtype.kind in "biuf":
        return float(value.reshape(()))
    if type(value) in (int, float) and type(value) is not bool:
        return float(value)
    raise AssertionError(f"{name} should be a single number, but it is a {type(value).__name__}")


def relative_error(a: Any, b: Any) -> float:
    """max |a - b| / max(|a| + |b|): the gradient-check measure, robust to entries near zero."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return 0.0
    scale = float(np.max(np.abs(a) + np.abs(b)))
    return float(np.max(np.abs(a - b))) / max(scale, 1e-300)


def assert_close(actual: Any, expected: Any, name: str, rtol: float = 1e-6, atol: float = 1e-8) -> None:
    """Compare without echoing values: say how many entries differ and the largest error.

    In a hidden test the error is relative (``relative_error``, one significant digit): an
    absolute error would give away the magnitude of hidden expected values (issue 11).
    """
    expected = np.asarray(expected, dtype=np.float64)
    if expected.ndim == 0 and type(actual) is not np.ndarray:
        got = np.asarray(expect_scalar(actual, name))
    else:
        got = expect_array(actual, name, shape=expected.shape)
    if not np.all(np.isfinite(got)):
        bad = int(np.sum(~np.isfinite(got)))
        raise AssertionError(f"{name} contains {bad} non-finite entries (nan or inf) out of {got.size}")
    wrong = ~np.isclose(got, expected, rtol=rtol, atol=atol)
    if wrong.any():
        if in_hidden_test():
            largest = f"largest relative error {relative_error(got, expected):.0e}"
        else:
            largest = f"largest absolute error {float(np.max(np.abs(got - expected))):.3g}"
        raise AssertionError(
            f"{name}: {int(wrong.sum())} of {got.size} entries are wrong "
            f"({largest}; tolerance rtol={rtol:g}, atol={atol:g})"
        )
