"""Loading submissions: notebooks and .py files, magics, and every kind of unreadable input."""

from __future__ import annotations

import json
import os

import nbformat
import pytest

from grader.grading.submission import MAX_SUBMISSION_BYTES, InvalidSubmission, load_submission
from tests.conftest import write_notebook


def test_notebook_code_cells_become_the_module(tmp_path):
    path = write_notebook(tmp_path / "ok.ipynb", "x = 1", "def f():\n    return x")
    submission = load_submission(path)
    assert submission.id == "ok"
    assert [c.source for c in submission.cells] == ["x = 1", "def f():\n    return x"]
    assert [c.index for c in submission.cells] == [1, 2]
    assert len(submission.sha256) == 64


def test_older_4x_minor_is_accepted(tmp_path):
    notebook = {
        "nbformat": 4, "nbformat_minor": 0, "metadata": {},
        "cells": [{"cell_type": "code", "metadata": {}, "source": ["a = 1\n", "b = 2"],
                   "outputs": [], "execution_count": None}],
    }  # fmt: skip
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps(notebook))
    assert load_submission(path).cells[0].source == "a = 1\nb = 2"


def test_magics_and_shell_lines_never_reach_a_shell(tmp_path):
    path = write_notebook(
        tmp_path / "m.ipynb",
        "%matplotlib inline\n!pip install evil\nfiles = !ls\nx = 1",
        "%%time\ny = 2",
        "%%bash\nrm -rf /",
        "%time z = 3\n%whos",
        "if True:\n    !echo hi\n    w = 4",
    )
    submission = load_submission(path)
    sources = [c.source for c in submission.cells]
    assert sources[0] == "pass\npass\npass\nx = 1"
    assert sources[1] == "pass\ny = 2"  # the magic's line stays a line: line numbers are the student's
    assert sources[2] == ""
    assert sources[3] == "z = 3\npass"
    assert sources[4] == "if True:\n    pass\n    w = 4"
    assert submission.warnings == (
        "cell 1: shell command '!pip install evil' was not run",
        "cell 1: shell command 'files = !ls' was not run",
        "cell 3: cell magic %%bash is not supported; the cell was skipped",
        "cell 4: magic %whos is not supported and was skipped",
        "cell 5: shell command '!echo hi' was not run",
    )


def test_py_file_percent_cells(tmp_path):
    path = tmp_path / "s.py"
    path.write_text("# %%\na = 1\n# %% second\nb = 2\n")
    assert [c.source.strip() for c in load_submission(path).cells] == ["a = 1", "b = 2"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "bad.ipynb is empty (0 bytes); submit the notebook you worked in"),
        (b'{"cells": [', "bad.ipynb is not a valid notebook: its JSON is broken at line 1, column 12; "
         "open it in Jupyter, save it, and submit again"),
        (b'{"hello": 1}', "bad.ipynb is JSON but not a Jupyter notebook (it has no cells)"),
        (b'[1, 2]', "bad.ipynb is JSON but not a Jupyter notebook (it has no cells)"),
        (json.dumps({"nbformat": 3, "worksheets": []}).encode(),
         "bad.ipynb is in notebook format 3, but only format 4 is accepted; "
         "open and save it in a current Jupyter to convert it"),
        (b'{"cells": [], "nbformat": 4, "x": "\xff\xfe"}',
         "bad.ipynb is not UTF-8 text (bad byte at offset 35); "
         "save it from Jupyter again instead of editing it elsewhere"),
        (json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}).encode(),
         "bad.ipynb contains no code"),
    ],
)  # fmt: skip
def test_unreadable_notebooks_get_one_sentence(tmp_path, content, message):
    path = tmp_path / "bad.ipynb"
    path.write_bytes(content)
    with pytest.raises(InvalidSubmission) as caught:
        load_submission(path)
    assert str(caught.value) == message


def test_oversized_file_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.ipynb"
    path.write_bytes(b" " * (MAX_SUBMISSION_BYTES + 1))
    with pytest.raises(InvalidSubmission, match=r"big.ipynb is 21.0 MB, over the 21 MB limit"):
        load_submission(path)


def test_wrong_suffix_and_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InvalidSubmission, match="neither a notebook"):
        load_submission(tmp_path / "notes.txt")
    with pytest.raises(InvalidSubmission, match="is a folder"):
        load_submission(tmp_path)


def test_markdown_and_raw_cells_are_not_code(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_raw_cell("import os"), nbformat.v4.new_code_cell("a = 1")]
    path = tmp_path / "r.ipynb"
    nbformat.write(notebook, path)
    assert [c.source for c in load_submission(path).cells] == ["a = 1"]


# ------------------------------------------------------------------ hostile bytes (issue 11)


def nested(levels: int) -> list:
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


def notebook_json(*sources: str, metadata: object = None) -> str:
    cells = [
        {"cell_type": "code", "metadata": {}, "source": s, "outputs": [], "execution_count": None} for s in sources
    ]
    return json.dumps({"nbformat": 4, "nbformat_minor": 4, "metadata": metadata or {}, "cells": cells})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        # Past what json's parser follows (RecursionError inside it) ...
        ('{"cells": ' + "[" * 100_000 + "]" * 100_000 + "}",
         "deep.ipynb is not a valid notebook: its JSON is nested more than 100 levels deep; "
         "open it in Jupyter, save it, and submit again"),
        # ... and well inside it, but past what nbformat's recursive validator should be given.
        (notebook_json("x = 1", metadata={"deep": nested(99)}),  # 101 levels with the notebook and its metadata
         "deep.ipynb is not a valid notebook: its JSON is nested more than 100 levels deep; "
         "open it in Jupyter, save it, and submit again"),
        # Python refuses to turn more than 4300 digits into an int (ValueError, CVE-2020-10735).
        (notebook_json("x = 1")[:-1] + ', "huge": ' + "9" * 5000 + "}",
         "deep.ipynb is not a valid notebook: it holds a number of more than 4300 digits; "
         "open it in Jupyter, save it, and submit again"),
    ],
)  # fmt: skip
def test_parser_errors_of_hostile_notebooks_are_invalid_submissions(tmp_path, content, message):
    path = tmp_path / "deep.ipynb"
    path.write_text(content)
    with pytest.raises(InvalidSubmission) as caught:
        load_submission(path)
    assert str(caught.value) == message


def test_a_notebook_just_inside_the_depth_limit_loads(tmp_path):
    path = tmp_path / "ok.ipynb"
    path.write_text(notebook_json("x = 1", metadata={"deep": nested(98)}))  # 100 levels: the limit
    assert load_submission(path).cells[0].source == "x = 1"


def test_a_lone_surrogate_in_a_cell_becomes_a_replacement_character(tmp_path):
    path = tmp_path / "s.ipynb"
    path.write_text(
        notebook_json('name = "\ud800"\n!ls \udcff')
    )  # written as JSON escapes: UTF-8 has no bytes for them
    submission = load_submission(path)
    assert submission.cells[0].source == 'name = "\ufffd"\npass'
    assert submission.warnings == (
        "cell 0: characters that are not valid Unicode (lone surrogates) became U+FFFD",
        "cell 0: shell command '!ls \ufffd' was not run",
    )
    compile(submission.cells[0].source, "<cell 0>", "exec")  # what the worker does; a surrogate would raise


def test_a_file_name_of_any_bytes_is_named_readably(tmp_path):
    path = tmp_path / os.fsdecode(b"M\xfcller\n.ipynb")
    path.write_bytes(b"")
    with pytest.raises(InvalidSubmission) as caught:
        load_submission(path)
    assert str(caught.value) == "M\\xfcller\\n.ipynb is empty (0 bytes); submit the notebook you worked in"
