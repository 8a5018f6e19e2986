"""A test suite collected once and run against one submission after another (issue 6).

pytest.main() configures pytest, imports the conftests and test modules and collects them at
every call: about 0.13 s of each backprop submission (cProfile of grade(), issue 6). A TestSuite
does that once per grading process and then only runs the collected items for each submission.

What is shared and what is not:
- Test modules and conftests are imported once per suite. Module-level data that never depends
  on a submission (a data set cached with functools.lru_cache) is shared on purpose.
- Fixtures of every scope are set up afresh for each submission and torn down after its last
  test, exactly as in a pytest session of its own: nothing a fixture holds reaches the next one.
- Each run starts from the state right after collection, as a fresh pytest.main() would: the
  global random generators (random, numpy, torch: a module-level np.random.seed(0) seeds every
  submission alike), the markers, keywords and attributes of every collected node (a test that
  calls request.applymarker), the session's failure counters and tmp_path_factory's folder.
- The suite watches its folder: a file added, removed or changed makes `current()` false, and
  the cache below builds a new suite, so an edited hidden test is never graded with the old code.

It mirrors _pytest.main.wrap_session (pytest 8 and 9) with pytest's own entry points:
_prepareconfig, _do_configure and _ensure_unconfigure are private but have not changed since
pytest 7; every test of this project runs through here, so a pytest that changes them fails
the suite at once rather than grading wrongly.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import sys
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _pytest.config import _prepareconfig

from grader.grading.testing import GradingPlugin, GradingRun


def pytest_args(tests_dir: Path) -> list[str]:
    return [
        str(tests_dir),
        "-c", os.devnull,  # the course repo's own pytest config must not leak in
        "--rootdir", str(tests_dir),
        "--confcutdir", str(tests_dir),
        "--import-mode=importlib",
        "--assert=plain",  # rewritten asserts would print expected values to the student
        "-p", "no:cacheprovider",
        "-p", "no:terminal",
        "-p", "no:stepwise",
        # pytest's unraisable-exception plugin runs gc.collect() at session end: ~1 s per
        # submission with torch loaded, measured with cProfile (issue 6).
        "-p", "no:unraisableexception",
        "-p", "no:threadexception",
        "-p", "no:faulthandler",
        "-p", "no:junitxml",
        "-p", "no:pastebin",
        "-p", "no:doctest",
    ]  # fmt: skip


def files_key(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """What the suite was built from: every file's path, size and modification time."""
    entries = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            with contextlib.suppress(OSError):
                stat = os.stat(os.path.join(root, name))
                entries.append((os.path.join(root, name), stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


@contextlib.contextmanager
def _without_outer_assert_rewriting() -> Iterator[None]:
    """Hide an enclosing pytest's assertion-rewriting import hook while the tests are imported.

    When grading runs inside another pytest session (a course's own tests), that session's hook
    would rewrite the hidden test modules: assert messages would print compared values (hidden
    expected values) or come back empty. The suite itself uses --assert=plain.
    """
    hooks = [finder for finder in sys.meta_path if type(finder).__name__ == "AssertionRewritingHook"]
    for hook in hooks:
        sys.meta_path.remove(hook)
    try:
        yield
    finally:
        sys.meta_path[:0] = hooks


def forget_test_modules(tests_dir: Path) -> None:
    """Drop imported test modules and conftests so the next suite reads the files afresh.

    pytest's importlib mode reuses a module already in sys.modules under the same name, so a
    new suite in this process would otherwise run the old (pre-edit) hidden tests.
    """
    roots = tuple({str(tests_dir) + os.sep, str(tests_dir.resolve()) + os.sep})
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and file.startswith(roots):
            del sys.modules[name]


def _own_keywords(node: Any) -> dict[str, Any]:
    """The node's own keywords (NodeKeywords keeps them in ``_markers``, pytest 7 to 9)."""
    keywords: dict[str, Any] = node.keywords._markers
    return keywords


class _Pristine:
    """What a run may change and the next run must not see: saved after collection, restored."""

    def __init__(self, session: pytest.Session) -> None:
        nodes = {id(node): node for item in session.items for node in item.listchain()}
        self.nodes: list[tuple[Any, frozenset[str], list[Any], dict[str, Any], set[str]]] = [
            (node, frozenset(vars(node)), list(node.own_markers), dict(_own_keywords(node)),
             set(node.extra_keyword_matches))
            for node in nodes.values()
        ]  # fmt: skip
        self.random = random.getstate()
        numpy, torch = sys.modules.get("numpy"), sys.modules.get("torch")
        self.numpy = numpy.random.get_state() if numpy is not None else None
        self.torch = torch.get_rng_state() if torch is not None else None

    def restore(self, session: pytest.Session) -> None:
        for node, keys, markers, keywords, extra in self.nodes:
            for key in set(vars(node)) - keys:
                delattr(node, key)  # attributes a test set on request.node
            node.own_markers = list(markers)
            _own_keywords(node).clear()
            _own_keywords(node).update(keywords)
            node.extra_keyword_matches = set(extra)
            if isinstance(node, pytest.Item):
                node.user_properties = []
                node._report_sections = []  # captured output of the last run's tests
        session.testsfailed = 0
        session.shouldfail = session.shouldstop = False
        random.setstate(self.random)
        numpy, torch = sys.modules.get("numpy"), sys.modules.get("torch")
        if numpy is not None and self.numpy is not None:
            numpy.random.set_state(self.numpy)
        if torch is not None and self.torch is not None:
            torch.set_rng_state(self.torch)

    @staticmethod
    def clean_up(config: pytest.Config) -> None:
        """After a run: no temporary folders, no traceback (of student data) kept alive."""
        factory = getattr(config, "_tmp_path_factory", None)
        basetemp = getattr(factory, "_basetemp", None)
        if basetemp is not None:
            shutil.rmtree(basetemp, ignore_errors=True)
            factory._basetemp = None  # type: ignore[union-attr]  # the next run makes a fresh one
        for name in ("last_type", "last_value", "last_traceback", "last_exc"):
            with contextlib.suppress(AttributeError):
                delattr(sys, name)


class TestSuite:
    """The tests of one folder, configured and collected once; `run` grades one submission."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, tests_dir: Path) -> None:
        self.tests_dir = tests_dir
        self.key = files_key(tests_dir)
        self.plugin = GradingPlugin()
        self.broken = False
        self._configured = self._started = False
        forget_test_modules(tests_dir)
        old_version = os.environ.get("PYTEST_VERSION")
        os.environ["PYTEST_VERSION"] = pytest.__version__  # as pytest.main() sets it
        try:
            with _without_outer_assert_rewriting():
                self.config = _prepareconfig(pytest_args(tests_dir), [self.plugin])
                self.session = pytest.Session.from_config(self.config)
                self._start()
        except BaseException:
            self.close()
            raise
        finally:
            if old_version is None:
                os.environ.pop("PYTEST_VERSION", None)
            else:
                os.environ["PYTEST_VERSION"] = old_version

    def _start(self) -> None:
        self.config._do_configure()
        self._configured = True
        self.config.hook.pytest_sessionstart(session=self.session)
        self._started = True
        cwd = os.getcwd()
        try:
            self.config.hook.pytest_collection(session=self.session)
        finally:
            os.chdir(cwd)
        self.pristine = _Pristine(self.session)
        # The collected items keep their modules; sys.modules must not, or the next suite of this
        # process (another assignment: every one has a conftest.py, often a test_x.py of the same
        # name) would be handed these by pytest's importlib mode and run the wrong tests.
        forget_test_modules(self.tests_dir)
        if self.collection_problems:
            self.broken = True  # collect again for the next submission: the problem may be passing

    @property
    def collection_problems(self) -> list[str]:
        return self.plugin.collection_problems

    @property
    def items(self) -> list[pytest.Item]:
        return list(self.session.items)

    def current(self) -> bool:
        """Whether the folder still holds exactly what this suite was built from."""
        return not self.broken and files_key(self.tests_dir) == self.key

    def run(self, grading_run: GradingRun) -> None:
        """Run every collected test once; fixtures of all scopes are torn down after the last."""
        if self.collection_problems:
            return  # pytest would refuse to run; the report says why
        items = self.session.items
        cwd = os.getcwd()
        self.pristine.restore(self.session)
        self.plugin.begin(grading_run)
        try:
            with _without_outer_assert_rewriting():
                for index, item in enumerate(items):
                    next_item = items[index + 1] if index + 1 < len(items) else None
                    item.config.hook.pytest_runtest_protocol(item=item, nextitem=next_item)
        except BaseException:
            self.broken = True  # fixtures may still be set up: never run this suite again
            raise
        finally:
            self.plugin.end()
            self.pristine.clean_up(self.config)
            os.chdir(cwd)

    def close(self) -> None:
        if self._started:
            self._started = False
            with contextlib.suppress(Exception):
                self.config.hook.pytest_sessionfinish(session=self.session, exitstatus=0)
        if self._configured:
            self._configured = False
            self.config._ensure_unconfigure()
        forget_test_modules(self.tests_dir)


class SuiteCache:
    """The suites of one grading process, by folder; a changed folder gets a new suite."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self.suites: OrderedDict[Path, TestSuite] = OrderedDict()

    def get(self, tests_dir: Path) -> TestSuite:
        suite = self.suites.pop(tests_dir, None)
        if suite is not None and not suite.current():
            suite.close()
            suite = None
        if suite is None:
            suite = TestSuite(tests_dir)
        self.suites[tests_dir] = suite
        while len(self.suites) > self.size:
            self.suites.popitem(last=False)[1].close()
        return suite

    def close(self) -> None:
        while self.suites:
            self.suites.popitem()[1].close()


_shared: SuiteCache | None = None


def shared_suites() -> SuiteCache:
    """This process's suites; grading processes keep theirs between submissions."""
    global _shared
    if _shared is None:
        import atexit

        _shared = SuiteCache()
        atexit.register(_shared.close)
    return _shared
