"""assignment.toml validation: errors name the file, the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.errors import SpecError
from grader.grading.spec import load_assignment, load_spec


def write_spec(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "assignments" / "demo"
    folder.mkdir(parents=True)
    (folder / "assignment.toml").write_text(text)
    return folder / "assignment.toml"


def test_minimal_spec_gets_defaults(tmp_path):
    spec = load_spec(write_spec(tmp_path, 'title = "Demo"\nnotebook = "demo.ipynb"\n'))
    assert spec.name == "demo"
    assert spec.limits.call_timeout_s == 10
    assert spec.gpu == "none"
    assert spec.preload == ["numpy"]


def test_unknown_field_is_named(tmp_path):
    path = write_spec(tmp_path, 'title = "Demo"\nnotebook = "d.ipynb"\n[limits]\nmemroy_mb = 5\n')
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value) == (
        f"{path} is not a valid assignment spec:\n"
        "  limits.memroy_mb: unknown field; check its spelling against the documented fields"
    )


def test_missing_field_says_what_to_add(tmp_path):
    path = write_spec(tmp_path, 'title = "Demo"\n')
    with pytest.raises(SpecError, match=r"notebook: required field is missing; add `notebook = \.\.\.`"):
        load_spec(path)


def test_wrong_type_shows_value(tmp_path):
    path = write_spec(tmp_path, 'title = "D"\nnotebook = "d.ipynb"\n[limits]\nmemory_mb = "lots"\n')
    with pytest.raises(SpecError, match=r"limits\.memory_mb: .*\(got 'lots'\)"):
        load_spec(path)


def test_unknown_gpu_policy_is_refused(tmp_path):
    path = write_spec(tmp_path, 'title = "D"\nnotebook = "d.ipynb"\ngpu = "always"\n')
    with pytest.raises(SpecError, match="gpu: Input should be 'none', 'optional' or 'required'"):
        load_spec(path)


def test_bad_toml_is_one_message(tmp_path):
    path = write_spec(tmp_path, 'title = "D\n')
    with pytest.raises(SpecError, match="is not valid TOML"):
        load_spec(path)


def test_unknown_assignment_lists_known_ones(tmp_path):
    write_spec(tmp_path, 'title = "D"\nnotebook = "d.ipynb"\n')
    with pytest.raises(SpecError, match="known assignments: demo"):
        load_assignment("nope", tmp_path)


def test_missing_hidden_tests_is_a_spec_error(tmp_path):
    write_spec(tmp_path, 'title = "D"\nnotebook = "d.ipynb"\n')
    with pytest.raises(SpecError, match="hidden tests for 'demo' not found"):
        load_assignment("demo", tmp_path)
