"""The similarity report: one self-contained HTML page, autoescaped, no JavaScript, side by side per pair."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, select_autoescape

from grader.similarity.compare import PairMatch
from grader.similarity.result import EXPLANATION, SimilarityResult, note_for

# Student code goes into this page: everything is autoescaped and nothing is marked safe.
_ENV = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # shown as a replacement mark, never sent raw
MAX_SIDE_BY_SIDE = 50
MAX_LISTED = 100

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 90em; color: #222; padding: 0 1em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #ddd; vertical-align: top; }
.pair { border-top: 2px solid #999; margin-top: 2em; }
.sides { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }
.code { font-family: ui-monospace, monospace; font-size: 12px; background: #fafafa; border: 1px solid #ddd; }
.code div { white-space: pre-wrap; word-break: break-all; padding: 0 .4em; min-height: 1.2em; }
.code .n { color: #999; display: inline-block; width: 3.5em; user-select: none; }
.code .match { background: #ffe08a; }
.code .given { color: #aaa; }
.code .cell { background: #eef; color: #555; font-style: italic; }
.legend span { padding: 0 .4em; margin-right: 1em; }
.note { color: #555; }
"""

PAGE = _ENV.from_string("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Similar code: {{ compared }} submissions</title>
<style>{{ style }}</style></head><body>
<h1>Similar code in {{ compared }} submissions</h1>
<p>{{ explanation }}</p>
<p class="note">Functions compared: {{ functions or "the whole submission" }}.
A pair is listed as similar at {{ threshold }} or more of its unusual code in common, or when one
function with much unusual code is {{ function_threshold }} alike;
fragments found in more than {{ common_at }} submissions count less, and past {{ 4 * common_at }} not at all.
{% if archives %}Earlier years compared with this batch: {{ archives }}.{% endif %}</p>
<p class="legend"><span class="match code">similar code</span><span class="given code">template's given code
(not compared)</span></p>
{% if groups %}<h2>Groups of similar submissions</h2><ul>
{% for g in groups %}<li>{{ g | join(" ~ ") }}</li>{% endfor %}</ul>
{% else %}<p>No pair of submissions is similar enough to list.</p>{% endif %}
<h2>Most similar pairs</h2>
<table><thead><tr><th>#</th><th>submissions</th><th>similarity</th><th>listed</th><th>by function</th></tr></thead>
<tbody>{% for row in rows %}<tr><td>{% if row.anchor %}<a href="#{{ row.anchor }}">{{ loop.index }}</a>
{% else %}{{ loop.index }}{% endif %}</td><td>{{ row.pair.a }} ~ {{ row.pair.b }}</td>
<td>{{ "%.0f" % (100 * row.pair.similarity) }}%{% if row.note %} ({{ row.note }}){% endif %}</td>
<td>{{ "similar" if row.pair.flagged else "below threshold" }}</td><td>{{ row.functions }}</td></tr>
{% endfor %}</tbody></table>
{% for side in sides %}<section class="pair" id="{{ side.anchor }}">
<h2>{{ side.pair.a }} ~ {{ side.pair.b }}: {{ "%.0f" % (100 * side.pair.similarity) }}% similar</h2>
<table><thead><tr><th>function</th><th>similarity</th><th>shared fingerprints</th></tr></thead><tbody>
{% for f in side.pair.functions %}<tr><td>{{ f.name }}</td>
<td>{% if f.similarity is none %}only common code{% else %}{{ "%.0f" % (100 * f.similarity) }}%{% endif %}</td>
<td>{{ f.shared }}</td></tr>{% endfor %}</tbody></table>
<div class="sides">{% for column in side.columns %}<div><h3>{{ column.title }}</h3><div class="code">
{% for line in column.lines %}<div class="{{ line.css }}"><span class="n">{{ line.number }}</span>{{ line.text }}</div>
{% endfor %}</div></div>{% endfor %}</div></section>
{% endfor %}
{% if problems %}<h2>Not compared</h2><ul>{% for p in problems %}<li>{{ p }}</li>{% endfor %}</ul>{% endif %}
</body></html>
""")


@dataclass(frozen=True)
class Line:
    number: str
    text: str
    css: str


@dataclass(frozen=True)
class Column:
    title: str
    lines: list[Line]


def _function_summary(pair: PairMatch) -> str:
    parts = []
    for f in pair.functions:
        parts.append(f"{f.name}: {'common' if f.similarity is None else f'{f.similarity:.0%}'}")
    return ", ".join(parts)


def _column(result: SimilarityResult, submission_id: str, matched: set[int]) -> Column:
    code = result.code(submission_id)
    text = code.lines
    lines: list[Line] = []
    for cell in code.cells:
        count = cell.source.count("\n") + 1
        if cell.index in code.unchanged_cells:  # the template's cell as released: one line says so
            lines.append(Line("", f"cell {cell.index}: the template's, unchanged ({count} lines)", "cell given"))
            continue
        lines.append(Line("", f"cell {cell.index}", "cell"))
        for number in range(cell.first_line, cell.first_line + count):
            css = "match" if number in matched else "given" if number in code.template_lines else ""
            lines.append(Line(str(number), _CONTROL.sub("\ufffd", text[number - 1]), css))
    title = f"{code.id} ({code.label})" if code.label else code.id
    return Column(title, lines)


def _side_by_side(result: SimilarityResult, pair: PairMatch, anchor: str) -> dict[str, object]:
    position = {code.id: i for i, code in enumerate(result.codes)}
    a, b = position[pair.a], position[pair.b]
    lines_a: set[int] = set()
    lines_b: set[int] = set()
    for f in pair.functions:
        first, second = result.index.shared_lines(a, b, f.name)
        lines_a |= first
        lines_b |= second
    return {
        "pair": pair,
        "anchor": anchor,
        "columns": [_column(result, pair.a, lines_a), _column(result, pair.b, lines_b)],
    }


def render(result: SimilarityResult) -> str:
    """The report page as a string."""
    listed = result.pairs[: max(MAX_LISTED, len(result.flagged))]
    rows: list[dict[str, object]] = []
    sides: list[dict[str, object]] = []
    for number, pair in enumerate(listed, start=1):
        anchor = f"pair-{number}" if pair.flagged and len(sides) < MAX_SIDE_BY_SIDE else ""
        note = note_for(pair, result.settings)
        rows.append({"pair": pair, "anchor": anchor, "functions": _function_summary(pair), "note": note})
        if anchor:
            sides.append(_side_by_side(result, pair, anchor))
    archives = sorted({code.archive for code in result.codes if code.archive})
    return PAGE.render(
        style=_STYLE,
        compared=result.compared,
        explanation=EXPLANATION,
        functions=", ".join(result.function_names),
        threshold=f"{result.settings.threshold:.0%}",
        function_threshold=f"{result.settings.function_threshold:.0%}",
        common_at=result.index.common_at,
        archives=", ".join(archives),
        groups=result.groups,
        rows=rows,
        sides=sides,
        problems=result.problems,
    )


def write_report(result: SimilarityResult, path: Path) -> None:
    """Write the HTML report (self-contained: styles inline, no scripts, no external files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(result), encoding="utf-8")
