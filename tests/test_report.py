"""The report is a versioned contract: published schema, field names, version checks."""

from __future__ import annotations

import json

import pytest

from grader.grading.report import SCHEMA_VERSION, SubmissionReport, json_schema, read_report, truncate
from tests.conftest import REPO_ROOT


def test_published_schema_matches_the_model():
    published = (REPO_ROOT / "docs" / "report.schema.json").read_text()
    assert published == json_schema(), "regenerate docs/report.schema.json (see README: Reports)"


def test_contract_field_names():
    fields = SubmissionReport.model_fields
    for name in (
        "schema_version",
        "assignment",
        "submission",
        "status",
        "score",
        "max_score",
        "tests",
        "resources",
        "warnings",
    ):
        assert name in fields
    schema = SubmissionReport.model_json_schema()["$defs"]
    assert set(schema["TestResult"]["properties"]) >= {
        "id",
        "name",
        "status",
        "score",
        "max_score",
        "message",
        "duration_s",
    }
    assert set(schema["Resources"]["properties"]) >= {
        "wall_s",
        "cpu_s",
        "peak_rss_mb",
        "gpu_s",
        "gpu_peak_mb",
    }
    assert set(schema["SubmissionInfo"]["properties"]) == {"id", "path", "sha256"}


@pytest.mark.parametrize(("version", "word"), [(SCHEMA_VERSION + 1, "newer"), (0, "older")])
def test_other_schema_versions_are_refused_by_name(tmp_path, version, word):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"schema_version": version}))
    with pytest.raises(ValueError, match=f"schema version {version}, {word} than this grader's {SCHEMA_VERSION}"):
        read_report(path)


def test_truncate_says_how_much_was_cut():
    text = truncate("x" * 5000, 100)
    assert len(text) < 140 and text.endswith("[4940 more characters cut]")
