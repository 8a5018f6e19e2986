"""Class-summary plots rendered by matplotlib to inline SVG (no JavaScript, readable offline)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display on grading machines

import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen before pyplot loads
from matplotlib.figure import Figure  # noqa: E402


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and DOCTYPE for inline use


def histogram(values: list[float], title: str, xlabel: str, bins: int = 20) -> str:
    figure, axes = plt.subplots(figsize=(6, 3))
    if values:
        axes.hist(values, bins=bins, color="#4878a8", edgecolor="white")
    else:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("submissions")
    return _svg(figure)


def pass_rates(rates: dict[str, float]) -> str:
    figure, axes = plt.subplots(figsize=(6, 0.35 * max(len(rates), 3) + 1))
    names = list(rates)
    axes.barh(names, [100 * rates[n] for n in names], color="#5a9e6f")
    axes.invert_yaxis()
    axes.set_xlim(0, 100)
    axes.set_xlabel("% of graded submissions passing")
    axes.set_title("Pass rate per test")
    return _svg(figure)
