"""HTML exports: a feedback page per student and a class summary with plots.

Jinja2 with autoescaping renders every string, because messages and output come from student
code (jinja2 is already required by nbconvert; hand-built HTML would be one missed escape away
from script injection into a TA's browser). The feedback page is student-facing and renders the
student view only; the class summary is the TA's and keeps the detail, with control characters
made visible (the `text` filter).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from jinja2 import Environment, select_autoescape

from grader.batch.exports.plots import histogram, pass_rates
from grader.batch.gradebook import Row
from grader.batch.paths import safe_path_component
from grader.grading.spec import FeedbackPolicy
from grader.grading.student_view import sanitize_text, student_view

_ENV = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
_ENV.filters["text"] = sanitize_text
_ENV.filters["safe_name"] = safe_path_component

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
table { border-collapse: collapse; width: 100%; margin: 1em 0; }
th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #ddd; vertical-align: top; }
.passed { color: #1a7f37; } .failed, .error { color: #c62828; }
.timeout, .memory { color: #b26a00; } .crashed, .invalid { color: #8e24aa; } .skipped { color: #777; }
pre { background: #f6f6f6; padding: .6em; overflow-x: auto; white-space: pre-wrap; }
.score { font-size: 1.4em; font-weight: bold; } .plot svg { max-width: 100%; height: auto; }
"""

FEEDBACK = _ENV.from_string("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ v.assignment }}: feedback for {{ student_id }}</title>
<style>{{ style }}</style></head><body>
<h1>{{ v.assignment }}: feedback for {{ display_name or student_id }}</h1>
<p class="score">{% if v.score is none %}not graded yet{% else %}{{ '%g' % v.score }} / {{ '%g' % v.max_score }}
{% endif %} <small>({{ v.status }})</small></p>
{% if v.message %}<p>{{ v.message }}</p>{% endif %}
<table><thead><tr><th>test</th><th>status</th><th>points</th><th>details</th></tr></thead><tbody>
{% for t in v.tests %}<tr><td>{{ t.name }}</td><td class="{{ t.status }}">{{ t.status }}</td>
<td>{{ '%g' % t.score }} / {{ '%g' % t.max_score }}</td>
<td>{% if t.details_hidden %}<em>{{ t.message }}</em>{% else %}{{ t.message }}{% endif %}</td></tr>
{% endfor %}</tbody></table>
{% if v.failing_cells %}<h2>Cells that raised</h2><ul>
{% for c in v.failing_cells %}<li>cell {{ c.index }}: <code>{{ c.message }}</code></li>{% endfor %}</ul>{% endif %}
{% if v.warnings %}<h2>Warnings</h2><ul>{% for w in v.warnings %}<li>{{ w }}</li>{% endfor %}</ul>{% endif %}
<h2>Resources</h2><p>wall time {{ '%.2f' % v.wall_s }} s
{% if v.cpu_s is not none %}· CPU {{ '%.2f' % v.cpu_s }} s{% endif %}
{% if v.peak_rss_mb is not none %}· peak memory {{ '%.0f' % v.peak_rss_mb }} MB{% endif %}</p>
{% if v.output %}<h2>What your code printed</h2><pre>{{ v.output[:5000] }}</pre>
{% elif v.output_withheld %}<p><small>What your code printed while it was graded is not shown.</small></p>{% endif %}
<p><small>submission sha256 {{ v.sha256 }} · grader {{ v.grader_version }}</small></p>
</body></html>
""")

SUMMARY = _ENV.from_string("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ assignment | text }}: class summary</title>
<style>{{ style }}</style></head><body>
<h1>{{ assignment | text }}: class summary</h1>
<p>{{ total }} submissions: {{ graded }} graded (mean {{ '%.1f' % mean }}, median {{ '%.1f' % median }}),
{{ invalid }} invalid, {{ errors }} grader errors.</p>
<div class="plot" id="score-histogram">{{ score_plot | safe }}</div>
<div class="plot" id="pass-rates">{{ pass_plot | safe }}</div>
<div class="plot" id="runtime">{{ runtime_plot | safe }}</div>
<div class="plot" id="memory">{{ memory_plot | safe }}</div>
<h2>Slowest submissions</h2>
<table><thead><tr><th>student</th><th>wall s</th><th>peak MB</th><th>score</th></tr></thead><tbody>
{% for row in slowest %}<tr>
<td><a href="feedback/{{ row.student_id | safe_name | urlencode }}.html">{{ row.student_id | text }}</a></td>
<td>{{ '%.2f' % row.report.resources.wall_s }}</td>
<td>{% if row.report.resources.peak_rss_mb is not none %}{{ '%.0f' % row.report.resources.peak_rss_mb }}{% endif %}</td>
<td>{% if row.report.score is not none %}{{ '%g' % row.report.score }}{% endif %}</td></tr>{% endfor %}
</tbody></table>
{% if raised %}<h2>Tests that raised on students' answers</h2>
<p>Each of these tests raised an exception of its own while handling a submission's value; the
student got an error (zero) for it. Many students on one test usually means the test needs a fix.</p>
<table id="tests-that-raised"><thead><tr><th>test</th><th>submissions</th><th>first exception</th></tr></thead><tbody>
{% for name, count, example in raised %}<tr><td>{{ name | text }}</td><td>{{ count }}</td>
<td>{{ example | text }}</td></tr>{% endfor %}</tbody></table>{% endif %}
{% if error_rows %}<h2>Grader errors (rerun these)</h2><ul>
{% for row in error_rows %}<li>{{ row.student_id | text }}: {{ row.report.message | text }}</li>{% endfor %}</ul>
{% endif %}
</body></html>
""")


def write_feedback(rows: list[Row], folder: Path, policy: FeedbackPolicy) -> Path:
    """``folder/<student id>.html`` for every student, from the student view."""
    folder.mkdir(parents=True, exist_ok=True)
    for row in rows:
        html = FEEDBACK.render(
            v=student_view(row.report, policy), style=_STYLE,
            student_id=sanitize_text(row.student_id, keep_newlines=False),
            display_name=sanitize_text(row.display_name, keep_newlines=False),
        )  # fmt: skip
        (folder / f"{safe_path_component(row.student_id)}.html").write_text(html, encoding="utf-8")
    return folder


def _tests_that_raised(rows: list[Row]) -> list[tuple[str, int, str]]:
    """Per test: how many submissions made the test's own code raise, and the first exception (issue 14)."""
    counts: dict[str, list[str]] = {}
    for row in rows:
        for test in row.report.tests:
            if test.test_raised:
                counts.setdefault(test.name, []).append(test.test_raised)
    return sorted(((name, len(found), found[0][:300]) for name, found in counts.items()), key=lambda t: -t[1])


def write_summary(rows: list[Row], path: Path) -> Path:
    """One page for the class: counts, four plots, the slowest submissions, grader errors."""
    graded = [row for row in rows if row.report.status == "graded"]
    scores = [row.report.score or 0.0 for row in graded]
    rates: dict[str, float] = {}
    for row in graded:
        for test in row.report.tests:
            name = sanitize_text(test.name, keep_newlines=False)
            rates[name] = rates.get(name, 0.0) + (test.status == "passed") / len(graded)
    html = SUMMARY.render(
        raised=_tests_that_raised(rows),
        assignment=rows[0].report.assignment if rows else "(empty gradebook)",
        style=_STYLE,
        total=len(rows),
        graded=len(graded),
        invalid=sum(row.report.status == "invalid_submission" for row in rows),
        errors=sum(row.report.status == "grader_error" for row in rows),
        mean=statistics.fmean(scores) if scores else 0.0,
        median=statistics.median(scores) if scores else 0.0,
        score_plot=histogram(scores, "Scores", "points"),
        pass_plot=pass_rates(rates),
        runtime_plot=histogram([row.report.resources.wall_s for row in rows], "Grading time", "seconds"),
        memory_plot=histogram(
            [row.report.resources.peak_rss_mb for row in rows if row.report.resources.peak_rss_mb is not None],
            "Peak memory of the sandbox",
            "MB",
        ),
        slowest=sorted(rows, key=lambda row: row.report.resources.wall_s, reverse=True)[:10],
        error_rows=[row for row in rows if row.report.status == "grader_error"],
    )
    path.write_text(html, encoding="utf-8")
    return path
