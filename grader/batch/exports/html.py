"""HTML exports: a feedback page per student and a class summary with plots.

Jinja2 with autoescaping renders every string, because messages and output come from student
code (jinja2 is already required by nbconvert; hand-built HTML would be one missed escape away
from script injection into a TA's browser).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from jinja2 import Environment, select_autoescape

from grader.batch.exports.plots import histogram, pass_rates
from grader.batch.gradebook import Row

_ENV = Environment(autoescape=select_autoescape(default=True, default_for_string=True))

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
<html lang="en"><head><meta charset="utf-8"><title>{{ r.assignment }}: feedback for {{ row.student_id }}</title>
<style>{{ style }}</style></head><body>
<h1>{{ r.assignment }}: feedback for {{ row.display_name or row.student_id }}</h1>
<p class="score">{% if r.score is none %}not graded yet{% else %}{{ '%g' % r.score }} / {{ '%g' % r.max_score }}
{% endif %} <small>({{ r.status }})</small></p>
{% if r.message %}<p>{{ r.message }}</p>{% endif %}
<table><thead><tr><th>test</th><th>status</th><th>points</th><th>details</th></tr></thead><tbody>
{% for t in r.tests %}<tr><td>{{ t.name }}</td><td class="{{ t.status }}">{{ t.status }}</td>
<td>{{ '%g' % t.score }} / {{ '%g' % t.max_score }}</td>
<td>{% if t.visible %}{{ t.message }}{% else %}<em>details of this test are hidden</em>{% endif %}</td></tr>
{% endfor %}</tbody></table>
{% if failing_cells %}<h2>Cells that raised</h2><ul>
{% for c in failing_cells %}<li>cell {{ c.index }}: <code>{{ c.message }}</code></li>{% endfor %}</ul>{% endif %}
{% if r.warnings %}<h2>Warnings</h2><ul>{% for w in r.warnings %}<li>{{ w }}</li>{% endfor %}</ul>{% endif %}
<h2>Resources</h2><p>wall time {{ '%.2f' % r.resources.wall_s }} s
{% if r.resources.cpu_s is not none %}· CPU {{ '%.2f' % r.resources.cpu_s }} s{% endif %}
{% if r.resources.peak_rss_mb is not none %}· peak memory {{ '%.0f' % r.resources.peak_rss_mb }} MB{% endif %}</p>
{% if r.output %}<h2>What your code printed</h2><pre>{{ r.output[:5000] }}</pre>{% endif %}
<p><small>submission sha256 {{ r.submission.sha256 }} · grader {{ r.grader_version }} · seed {{ r.seed }}</small></p>
</body></html>
""")

SUMMARY = _ENV.from_string("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ assignment }}: class summary</title>
<style>{{ style }}</style></head><body>
<h1>{{ assignment }}: class summary</h1>
<p>{{ total }} submissions: {{ graded }} graded (mean {{ '%.1f' % mean }}, median {{ '%.1f' % median }}),
{{ invalid }} invalid, {{ errors }} grader errors.</p>
<div class="plot" id="score-histogram">{{ score_plot | safe }}</div>
<div class="plot" id="pass-rates">{{ pass_plot | safe }}</div>
<div class="plot" id="runtime">{{ runtime_plot | safe }}</div>
<div class="plot" id="memory">{{ memory_plot | safe }}</div>
<h2>Slowest submissions</h2>
<table><thead><tr><th>student</th><th>wall s</th><th>peak MB</th><th>score</th></tr></thead><tbody>
{% for row in slowest %}<tr><td><a href="feedback/{{ row.student_id }}.html">{{ row.student_id }}</a></td>
<td>{{ '%.2f' % row.report.resources.wall_s }}</td>
<td>{% if row.report.resources.peak_rss_mb is not none %}{{ '%.0f' % row.report.resources.peak_rss_mb }}{% endif %}</td>
<td>{% if row.report.score is not none %}{{ '%g' % row.report.score }}{% endif %}</td></tr>{% endfor %}
</tbody></table>
{% if error_rows %}<h2>Grader errors (rerun these)</h2><ul>
{% for row in error_rows %}<li>{{ row.student_id }}: {{ row.report.message }}</li>{% endfor %}</ul>{% endif %}
</body></html>
""")


def write_feedback(rows: list[Row], folder: Path) -> Path:
    """``folder/<student id>.html`` for every student."""
    folder.mkdir(parents=True, exist_ok=True)
    for row in rows:
        failing = [cell for cell in row.report.cells if not cell.ok]
        html = FEEDBACK.render(r=row.report, row=row, style=_STYLE, failing_cells=failing)
        (folder / f"{row.student_id}.html").write_text(html, encoding="utf-8")
    return folder


def write_summary(rows: list[Row], path: Path) -> Path:
    """One page for the class: counts, four plots, the slowest submissions, grader errors."""
    graded = [row for row in rows if row.report.status == "graded"]
    scores = [row.report.score or 0.0 for row in graded]
    rates: dict[str, float] = {}
    for row in graded:
        for test in row.report.tests:
            rates[test.name] = rates.get(test.name, 0.0) + (test.status == "passed") / len(graded)
    html = SUMMARY.render(
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
