"""Forbidden imports and calls are found in the source, outside the sandbox."""

from __future__ import annotations

from grader.grading.spec import StaticPolicy
from grader.grading.static_checks import check_cells
from grader.grading.submission import Cell

POLICY = StaticPolicy(forbidden_imports=["torch.nn.functional", "sklearn"], forbidden_calls=["nn.LSTM", "nn.LSTMCell"])


def describe(*sources: str) -> list[str]:
    cells = tuple(Cell(index=i, source=s) for i, s in enumerate(sources))
    return [v.describe() for v in check_cells(cells, POLICY)]


def test_attribute_calls_and_imports_are_found():
    assert describe(
        "import torch\nfrom torch import nn\ncell = nn.LSTMCell(3, 4)",
        "layer = torch.nn.LSTM(3, 4)",
        "from torch.nn import LSTM",
        "import sklearn.datasets as d",
        "from torch.nn.functional import relu",
    ) == [
        "use of nn.LSTMCell (cell 0, line 3)",
        "use of nn.LSTM (cell 1, line 1)",
        "use of nn.LSTM (cell 2, line 1)",
        "import of sklearn (cell 3, line 1)",
        "import of torch.nn.functional (cell 4, line 1)",
    ]


def test_similar_names_are_not_flagged():
    assert describe("from torch import nn\nx = nn.LSTMish\ny = nn.Linear(2, 2)\nimport sklearnx") == []


def test_wildcards_match_families():
    policy = StaticPolicy(forbidden_calls=["nn.GRU*", "nn.RNN*"])
    cells = (Cell(0, "from torch import nn\na = nn.GRUCell(2, 2)\nb = nn.RNN(2, 2)\nc = nn.Linear(2, 2)"),)
    assert [v.describe() for v in check_cells(cells, policy)] == [
        "use of nn.GRU* (cell 0, line 2)",
        "use of nn.RNN* (cell 0, line 3)",
    ]


def test_syntax_errors_are_left_to_the_worker():
    assert describe("def broken(:\n    nn.LSTM()") == []


# ------------------------------------------------------------------ hostile source (issue 11)


def test_source_too_deep_to_parse_is_not_waved_through():
    # ast.parse gives up one level before compile() does (and the student may raise the recursion
    # limit in an earlier cell): skipping such a cell would let a forbidden import run unchecked.
    deep = "from torch.nn import LSTM\nx = " + "+".join(["1"] * 100_000)
    assert describe("a = 1", deep) == [
        "code nested too deeply to be checked for forbidden names (split the long expression) (cell 1)"
    ]


def test_without_rules_nothing_is_parsed():
    cells = (Cell(0, "x = " + "+".join(["1"] * 100_000)),)
    assert check_cells(cells, StaticPolicy()) == []  # the worker's compile reports it as the cell's error


def test_null_bytes_are_left_to_the_worker():
    assert describe("x = 1\x00", "import sklearn") == ["import of sklearn (cell 1, line 1)"]


def test_more_code_than_can_be_checked_is_refused_not_parsed():
    # Parsing costs this process ~500 bytes of memory per byte of source: 20 MB would be 10 GB.
    assert describe("x = 1", "# padding\n" * 50_000) == [
        "more code than can be checked for forbidden names (over 500,000 bytes) (cell 1)"
    ]
