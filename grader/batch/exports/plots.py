"""Class-summary plots rendered by matplotlib to inline SVG (no JavaScript, readable offline)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display on grading machines

import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen before pyplot loads
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and DOCTYPE for inline use


def histogram(values: list[float], title: str, xlabel: str, bins: int = 20) -> str:
    """Resources (seconds, MB): never a negative axis, even when every value is the same."""
    figure, axes = plt.subplots(figsize=(6, 3))
    if values:
        top = max(values)
        axes.hist(values, bins=bins, range=(0, top * 1.05 if top > 0 else 1), color="#4878a8", edgecolor="white")
        axes.set_xlim(left=0)
    else:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("submissions")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    return _svg(figure)


def score_histogram(scores: list[float], max_score: float) -> str:
    """Final scores on the assignment's own axis, 0 to the maximum, whatever the data (all zero, one student)."""
    figure, axes = plt.subplots(figsize=(6, 3))
    top = max_score if max_score > 0 else max([*scores, 1.0])
    if scores:
        axes.hist(scores, bins=min(20, max(int(top), 1)), range=(0, top), color="#4878a8", edgecolor="white")
    else:
        axes.text(0.5, 0.5, "no graded submissions", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlim(0, top)
    axes.set_title(f"Final scores ({len(scores)} graded)")
    axes.set_xlabel(f"points (of {top:g})")
    axes.set_ylabel("students")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    return _svg(figure)


def test_outcomes(shares: dict[str, tuple[float, float, float]]) -> str:
    """Per test, the shares at full marks, partial credit and zero: bars that always fill 0..100 %."""
    figure, axes = plt.subplots(figsize=(6, 0.35 * max(len(shares), 3) + 1.2))
    names = list(shares)
    if names:
        full = [100 * shares[n][0] for n in names]
        partial = [100 * shares[n][1] for n in names]
        zero = [100 * shares[n][2] for n in names]
        axes.barh(names, full, color="#5a9e6f", label="full marks")
        axes.barh(names, partial, left=full, color="#e0b050", label="partial credit")
        axes.barh(names, zero, left=[f + p for f, p in zip(full, partial, strict=True)], color="#c9514a", label="zero")
        axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False, fontsize="small")
        axes.invert_yaxis()
    else:
        axes.text(0.5, 0.5, "no graded submissions", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlim(0, 100)
    axes.set_xlabel("% of graded submissions")
    return _svg(figure)
