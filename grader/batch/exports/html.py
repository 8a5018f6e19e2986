"""HTML exports: a feedback page per student and a class summary with plots.

Jinja2 with autoescaping renders every string, because messages and output come from student
code (jinja2 is already required by nbconvert; hand-built HTML would be one missed escape away
from script injection into a TA's browser). The feedback page is student-facing and renders the
student view only; the class summary is the TA's and keeps the detail, with control characters
made visible (the `text` filter).
"""

from __future__ import annotations

import shlex
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from jinja2 import Environment, select_autoescape

from grader.batch.adjustments import GradeLine
from grader.batch.exports.plots import histogram, score_histogram, test_outcomes
from grader.batch.gradebook import Row
from grader.batch.intake import parse_student
from grader.batch.paths import safe_path_component
from grader.grading.spec import FeedbackPolicy
from grader.grading.student_view import StudentReport, sanitize_text, student_view

if TYPE_CHECKING:
    from grader.batch.export_settings import ExportSettings

_ENV = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
_ENV.filters["text"] = sanitize_text
_ENV.filters["safe_name"] = safe_path_component
_ENV.filters["plural"] = lambda n: "" if n == 1 else "s"
_ENV.filters["pts"] = lambda v: "" if v is None else f"{round(v, 2):g}"
_ENV.filters["when"] = lambda d: "unknown" if d is None else d.strftime("%Y-%m-%d %H:%M %z")
_ENV.filters["unix_when"] = lambda t: datetime.fromtimestamp(t).astimezone().strftime("%Y-%m-%d %H:%M")
_ENV.filters["first_line"] = lambda text: str(text).split("\n", 1)[0][:300]

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
{% if v.grade_changes %}<ul class="grade-changes"><li>automatic score {{ '%g' % v.automatic_score }}</li>
{% for c in v.grade_changes %}<li>{{ 'late penalty' if c.kind == 'late_penalty' else 'adjustment' }}
{%- if c.test %} ({{ c.test }}){% endif %}:
{{ '%+g' % c.points }}{% if c.reason %}: {{ c.reason }}{% endif %}</li>{% endfor %}</ul>{% endif %}
<table><thead><tr><th>test</th><th>status</th><th>points</th><th>details</th></tr></thead><tbody>
{% for t in v.tests %}<tr><td>{{ t.name }}</td><td class="{{ t.status }}">{{ t.status }}</td>
<td>{{ '%g' % t.score }} / {{ '%g' % t.max_score }}</td>
<td>{% if t.details_hidden %}<em>{{ t.message }}</em>{% else %}{{ t.message }}{% endif %}</td></tr>
{% endfor %}</tbody></table>
{% if v.failing_cells %}<h2>Cells that did not run to their end</h2><ul>
{% for c in v.failing_cells %}<li>{{ c.label or ('cell %d' % c.index) }}: <code>{{ c.message }}</code></li>
{% endfor %}</ul>{% endif %}
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
{% macro who(line) %}<a href="feedback/{{ line.student_id | safe_name | urlencode }}.html">{{ line.student_id | text
}}</a>
{% if line.name %} {{ line.name | text }}{% endif %}{% endmacro %}
<h1>{{ assignment | text }}: class summary</h1>
<p id="counts">{% if roster %}{{ roster }} on the roster ({{ roster_source | text }}),
{% endif %}{{ submitted }} submitted:
{{ graded }} graded (final scores: mean {{ '%.1f' % mean }}, median {{ '%.1f' % median }} of {{ '%g' % max_score }}),
{{ invalid }} invalid, {{ errors }} grader error{{ errors | plural }}; {{ attention | length }} need{{ '' if attention
| length != 1 else 's' }} attention,
{{ late | length }} late{% if roster %}, {{ missing | length }} missing{% endif %}.</p>
{% if attention %}<h2>Needs attention ({{ attention | length }})</h2>
<p>These rows carry no grade in the LMS exports and are marked in gradebook.csv until resolved.</p>
<table id="needs-attention"><thead><tr><th>student</th><th>why</th></tr></thead><tbody>
{% for line in attention %}<tr><td>{{ who(line) }}</td><td>{% for why in line.attention %}{{ why | text }}<br>
{% endfor %}</td></tr>
{% endfor %}</tbody></table>{% endif %}
{% if error_lines %}<h2>Grader errors (rerun these)</h2><ul id="grader-errors">
{% for line in error_lines %}<li>{{ who(line) }}: {{ line.row.report.message | first_line | text }}</li>
{% endfor %}</ul>
<p>Rerun exactly these (after fixing the cause):</p><pre id="rerun">{{ rerun | text }}</pre>{% endif %}
{% if identical or template_copies %}<h2>Flags</h2>{% endif %}
{% if identical %}<h3>Byte-identical submissions</h3><ul id="identical">
{% for sha, group in identical %}<li>{{ group | length }} identical files (sha256 {{ sha[:12] }}):
{% for line in group %}{{ who(line) }}{% if not loop.last %}, {% endif %}{% endfor %}</li>{% endfor %}</ul>{% endif %}
{% if template_copies %}<h3>Identical to the template (nothing done)</h3><ul id="template-copies">
{% for line in template_copies %}<li>{{ who(line) }}</li>{% endfor %}</ul>{% endif %}
{% if late_policy %}<h2>Late work ({{ late | length }} late)</h2><p>{{ late_policy | text }}</p>
{% if late or extended %}<table id="late"><thead><tr><th>student</th><th>submitted</th><th>deadline</th>
<th>days late</th>
<th>raw</th><th>penalty</th><th>final</th></tr></thead><tbody>
{% for line in late + extended %}<tr><td>{{ who(line) }}</td><td>{{ line.late.submitted_at | when }}
{% if line.late.time_source == 'file time' %}<small>(file time)</small>{% endif %}</td>
<td>{{ line.late.deadline | when }}{% if line.late.extended %} <small>(extension)</small>{% endif %}</td>
<td>{{ line.late.days_late }}</td><td>{{ line.automatic_score | pts }}</td>
<td>-{{ line.late.penalty_points | pts }}</td>
<td>{{ line.score | pts }}</td></tr>{% endfor %}</tbody></table>{% endif %}
{% if file_times %}<p class="warning">{{ file_times }} submission time{{ file_times | plural }} came from file
modification times,
not from the LMS: give the grading worksheet as --roster, or --submission-times FILE.</p>{% endif %}{% endif %}
{% if missing or unknown %}<h2>Roster</h2>{% endif %}
{% if missing %}<h3>No submission ({{ missing | length }})</h3><ul id="missing">
{% for line in missing %}<li>{{ line.student_id | text }} {{ line.name | text }}</li>{% endfor %}</ul>{% endif %}
{% if unknown %}<h3>Not on the roster ({{ unknown | length }})</h3><ul id="unknown">
{% for line in unknown %}<li>{{ who(line) }}</li>{% endfor %}</ul>{% endif %}
{% if adjustments %}<h2>Adjustments ({{ adjustments | length }})</h2>
<table id="adjustments"><thead><tr><th>#</th><th>student</th><th>test</th><th>change</th><th>reason</th>
<th>by, when</th>
<th>review</th></tr></thead><tbody>
{% for line, a in adjustments %}<tr><td>{{ a.adjustment.seq }}</td><td>{{ who(line) }}</td>
<td>{{ (a.adjustment.test or 'whole submission') | text }}</td>
<td>{% if a.adjustment.kind == 'set_score' %}set to {{ a.adjustment.value | pts }}
{% else %}{{ '%+g' % a.adjustment.value }}{% endif %}
{% if not a.applied %} (not applied){% endif %}</td><td>{{ a.adjustment.reason | text }}
{% if a.adjustment.show_reason %} <small>(shown)</small>{% endif %}</td>
<td>{{ a.adjustment.author | text }}, {{ a.adjustment.created_at | unix_when }}</td><td>{{ a.flag | text }}</td></tr>
{% endfor %}
</tbody></table>{% endif %}
<h2>Scores</h2>
<div class="plot" id="score-histogram">{{ score_plot | safe }}</div>
<h2>Per test</h2>
<p>Partial credit counts as points: the mean is in points, out of the test's points.</p>
<div class="plot" id="test-outcomes">{{ tests_plot | safe }}</div>
<table id="per-test"><thead><tr><th>test</th><th>mean points</th><th>at full marks</th><th>at zero</th>
<th>most common message</th></tr></thead><tbody>
{% for t in tests %}<tr><td>{{ t.name | text }}</td><td>{{ '%.2f' % t.mean }} / {{ '%g' % t.max }}</td>
<td>{{ '%.0f' % (100 * t.full) }} %</td><td>{{ '%.0f' % (100 * t.zero) }} %</td>
<td>{% if t.message %}{{ t.message | text }} <small>({{ t.count }}×)</small>{% endif %}</td></tr>
{% endfor %}</tbody></table>
{% if raised %}<h2>Tests that raised on students' answers</h2>
<p>Each of these tests raised an exception of its own while handling a submission's value; the
student got an error (zero) for it. Many students on one test usually means the test needs a fix.</p>
<table id="tests-that-raised"><thead><tr><th>test</th><th>submissions</th><th>first exception</th></tr></thead><tbody>
{% for name, count, example in raised %}<tr><td>{{ name | text }}</td><td>{{ count }}</td>
<td>{{ example | text }}</td></tr>{% endfor %}</tbody></table>{% endif %}
<h2>Students</h2>
<table id="students"><thead><tr><th>student</th><th>status</th><th>automatic</th><th>adjustments</th>
<th>late penalty</th>
<th>final</th></tr></thead><tbody>
{% for line in lines %}<tr><td>{{ who(line) }}</td><td>{{ line.status }}
{% if line.attention %} <strong>needs attention</strong>{% endif %}</td>
<td>{{ line.automatic_score | pts }}</td><td>{% if line.applied %}{{ '%+g' % line.adjustment_points }}{% endif %}</td>
<td>{% if line.late and line.late.penalty_points %}-{{ line.late.penalty_points | pts }}{% endif %}</td>
<td>{% if not line.attention %}{{ line.score | pts }}{% endif %}</td></tr>{% endfor %}</tbody></table>
<details id="grading-machine"><summary>Grading machine: time and memory per submission</summary>
<div class="plot" id="runtime">{{ runtime_plot | safe }}</div>
<div class="plot" id="memory">{{ memory_plot | safe }}</div>
<h3>Slowest submissions</h3>
<table><thead><tr><th>student</th><th>wall s</th><th>peak MB</th></tr></thead><tbody>
{% for line in slowest %}<tr><td>{{ who(line) }}</td><td>{{ '%.2f' % line.row.report.resources.wall_s }}</td>
<td>{% if line.row.report.resources.peak_rss_mb is not none %}{{ '%.0f' % line.row.report.resources.peak_rss_mb }}
{% endif %}</td>
</tr>{% endfor %}</tbody></table></details>
</body></html>
""")


def write_feedback(
    rows: list[Row], folder: Path, policy: FeedbackPolicy, views: dict[str, StudentReport] | None = None
) -> Path:
    """``folder/<student id>.html`` for every student, from the student view (``views``: the final ones, with
    the TA's adjustments and the late penalty, issue 15)."""
    folder.mkdir(parents=True, exist_ok=True)
    for row in rows:
        html = FEEDBACK.render(
            v=(views or {}).get(row.student_id) or student_view(row.report, policy), style=_STYLE,
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


def write_summary(lines: list[GradeLine], path: Path, settings: ExportSettings, out_dir: Path) -> Path:
    """One page a TA acts on: what needs attention first, flags, late work, roster, adjustments, then scores,
    per-test statistics and every student; the grading machine's numbers folded away at the end."""
    submitted = [line for line in lines if line.row is not None]
    graded = [line for line in submitted if line.status == "graded"]
    scores = [line.score for line in graded if line.score is not None and not line.attention]
    max_score = max((line.max_score for line in submitted), default=0.0)
    tests = _per_test(graded)
    html = SUMMARY.render(
        lines=lines, style=_STYLE,
        assignment=next((ln.row.report.assignment for ln in submitted if ln.row), "(empty gradebook)"),
        roster=len(settings.roster.entries) if settings.roster else 0,
        roster_source=settings.roster.source if settings.roster else "",
        submitted=len(submitted), graded=len(graded), max_score=max_score,
        invalid=sum(line.status == "invalid_submission" for line in lines),
        errors=sum(line.status == "grader_error" for line in lines),
        mean=statistics.fmean(scores) if scores else 0.0, median=statistics.median(scores) if scores else 0.0,
        attention=[line for line in lines if line.attention],
        error_lines=(errors := [line for line in submitted if line.status == "grader_error"]),
        rerun=_rerun_command(errors, out_dir),
        identical=_identical(submitted), template_copies=_template_copies(submitted, settings.template_sha256),
        late_policy=_late_rule(settings), late=[line for line in submitted if line.late and line.late.late],
        extended=[line for line in submitted if line.late and line.late.extended and not line.late.late],
        file_times=sum(line.late is not None and line.late.time_source == "file time" for line in submitted),
        missing=[line for line in lines if line.status == "missing"],
        unknown=[line for line in submitted if any(w.startswith("not on the roster") for w in line.attention)],
        adjustments=[(line, applied) for line in lines for applied in line.applied],
        score_plot=score_histogram(scores, max_score),
        tests=tests, tests_plot=test_outcomes({t.name: (t.full, t.partial, t.zero) for t in tests}),
        raised=_tests_that_raised([line.row for line in submitted if line.row is not None]),
        runtime_plot=histogram([line.row.report.resources.wall_s for line in submitted if line.row], "Grading time",
                               "seconds"),
        memory_plot=histogram(
            [r.peak_rss_mb for line in submitted if line.row and (r := line.row.report.resources).peak_rss_mb],
            "Peak memory of the sandbox", "MB",
        ),
        slowest=sorted(submitted, key=lambda line: line.row.report.resources.wall_s if line.row else 0.0,
                       reverse=True)[:10],
    )  # fmt: skip
    path.write_text(html, encoding="utf-8")
    return path


@dataclass(frozen=True)
class TestStats:
    name: str
    max: float
    mean: float
    full: float
    partial: float
    zero: float
    message: str
    count: int


def _per_test(graded: list[GradeLine]) -> list[TestStats]:
    """Automatic points per test over the graded submissions: partial credit is points, not a failure."""
    found: dict[str, list[tuple[float, float, str]]] = {}
    for line in graded:
        for test in line.row.report.tests if line.row else []:
            message = sanitize_text(test.message.split("\n")[0], keep_newlines=False) if test.status != "passed" else ""
            found.setdefault(sanitize_text(test.name, keep_newlines=False), []).append(
                (test.score, test.max_score, message[:160])
            )
    stats = []
    for name, results in found.items():
        top = max(m for _, m, _ in results)
        n = len(results)
        full = sum(s >= m > 0 for s, m, _ in results) / n
        zero = sum(s <= 0 for s, _, _ in results) / n
        messages = Counter(msg for _, _, msg in results if msg)
        common, count = messages.most_common(1)[0] if messages else ("", 0)
        stats.append(TestStats(name, top, statistics.fmean(s for s, _, _ in results), full, max(1 - full - zero, 0.0),
                               zero, common, count))  # fmt: skip
    return stats


def _identical(lines: list[GradeLine]) -> list[tuple[str, list[GradeLine]]]:
    """Groups of byte-identical submissions (same sha256 in their reports)."""
    groups: dict[str, list[GradeLine]] = {}
    for line in lines:
        sha = line.row.report.submission.sha256 if line.row else None
        if sha:
            groups.setdefault(sha, []).append(line)
    return sorted(((sha, group) for sha, group in groups.items() if len(group) > 1), key=lambda g: -len(g[1]))


def _template_copies(lines: list[GradeLine], template_sha256: str | None) -> list[GradeLine]:
    if not template_sha256:
        return []
    return [line for line in lines if line.row and line.row.report.submission.sha256 == template_sha256]


def _rerun_command(errors: list[GradeLine], out_dir: Path) -> str:
    """`grader grade` on exactly the files (or student folders) that hit grader errors, into the same folder."""
    if not errors:
        return ""
    assignment = errors[0].row.report.assignment if errors[0].row else ""
    paths = []
    for line in errors:
        path = Path(line.row.report.submission.path) if line.row else None
        if path is None:
            continue
        # a file in a student's folder is found through the folder, which names the student
        paths.append(path if parse_student(path.name)[0] == line.student_id else path.parent)
    quoted = " ".join(shlex.quote(str(p)) for p in dict.fromkeys(paths))
    return f"grader grade {shlex.quote(assignment)} {quoted} --out {shlex.quote(str(out_dir))}"


def _late_rule(settings: ExportSettings) -> str:
    late = settings.late
    if late is None:
        return ""
    rule = f"Due {late.due.strftime('%Y-%m-%d %H:%M %z')} ({late.timezone})"
    if late.grace_minutes:
        rule += f", {late.grace_minutes:g} minutes' grace"
    basis = "of the points available" if late.penalty_basis == "max_score" else "of the points earned"
    rule += f"; {late.penalty_percent_per_day:g} % {basis} per started day late, at most {late.max_penalty_percent:g} %"
    extensions = len(settings.extensions)
    return rule + (f"; {extensions} extension{'s' if extensions != 1 else ''}." if extensions else ".")
