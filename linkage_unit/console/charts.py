"""The console's charts, drawn server-side by matplotlib as SVG that pages embed inline.

Charts are drawn from aggregates only (histograms, counts per run); each is a function of
its inputs, so a drawn chart is cached by its inputs and a page shown again costs no
drawing. Text stays text in the SVG (``svg.fonttype: none``): a screen reader or a search
in the page finds the labels, and the file stays small. Each SVG carries a ``<title>`` and
``role="img"`` with an ``aria-label`` that says in words what the chart shows.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import re
from functools import lru_cache
from html import escape
from typing import Any, Final

__all__ = [
    "CHANGES",
    "changes_over_runs",
    "draw_run",
    "entity_sizes",
    "precision_recall",
    "run_label",
    "score_histogram",
]

_WIDTH: Final = 7.0
_HEIGHT: Final = 3.0
_MATCH: Final = "#1b6ca8"
_OTHER: Final = "#c45a00"
_STYLE: Final[dict[str, Any]] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "pacelink",  # stable element IDs: the same chart is the same bytes
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _svg(fig: Any, label: str) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    text = text[text.index("<svg") :]  # drop the XML declaration and DOCTYPE: it is inlined
    # A fixed width would overflow a laptop-sized column; the viewBox keeps the proportions.
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"',
                  r'<svg\1 class="chart"', text, count=1)  # fmt: skip
    safe = escape(label, quote=True)
    return text.replace("<svg", f'<svg role="img" aria-label="{safe}"', 1).replace(
        ">", f"><title>{safe}</title>", 1
    )


@lru_cache(maxsize=256)
def _draw(kind: str, payload: str) -> str:
    # Deferred: matplotlib takes a second to import, and only the console draws.
    import matplotlib as mpl  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    data = json.loads(payload)
    with mpl.rc_context(_STYLE):  # type: ignore[arg-type]  # keys are rcParams names
        fig = Figure(figsize=(_WIDTH, _HEIGHT))
        ax = fig.add_subplot()
        label = _DRAWERS[kind](ax, data)
        fig.tight_layout()
        return _svg(fig, label)


def _histogram(ax: Any, data: dict[str, Any]) -> str:
    edges, counts, threshold = data["edges"], data["counts"], data["threshold"]
    widths = [b - a for a, b in itertools.pairwise(edges)]
    colours = [_MATCH if a >= threshold - 1e-9 else _OTHER for a in edges[:-1]]
    ax.bar(edges[:-1], counts, width=widths, align="edge", color=colours, linewidth=0)
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1)
    ax.text(threshold, 1.0, f" threshold {threshold:.3f}", transform=ax.get_xaxis_transform(),
            va="top", ha="left")  # fmt: skip
    if any(counts):
        ax.set_yscale("symlog", linthresh=1)
    ax.set_xlabel("Dice score of a candidate pair between parties")
    ax.set_ylabel("pairs (log scale)")
    linked = sum(c for a, c in zip(edges, counts, strict=False) if a >= threshold - 1e-9)
    return (f"Histogram of {sum(counts):,} candidate pair scores; {linked:,} at or above "
            f"the threshold {threshold:.3f}")  # fmt: skip


def _curve(ax: Any, data: dict[str, Any]) -> str:
    t, precision, recall = data["threshold"], data["precision"], data["recall"]
    chosen = data["chosen"]

    def line(values: list[float | None]) -> list[float]:
        return [math.nan if v is None else v for v in values]

    ax.plot(t, line(precision), color=_MATCH, label="estimated precision")
    ax.plot(t, line(recall), color=_OTHER, label="estimated recall")
    ax.axvline(chosen, color="black", linestyle="--", linewidth=1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("threshold")
    ax.set_ylabel("share")
    ax.legend(loc="lower left", frameon=False)
    k = min(range(len(t)), key=lambda i: abs(t[i] - chosen))
    p, r = precision[k], recall[k]
    at = ("" if p is None or r is None
          else f": at {chosen:.3f} precision {p:.3f}, recall {r:.3f}")  # fmt: skip
    return f"Estimated precision and recall against the threshold (label-free){at}"


def _sizes(ax: Any, data: dict[str, Any]) -> str:
    sizes = sorted((int(k), int(v)) for k, v in data["sizes"].items())
    ax.bar([str(k) for k, _ in sizes], [v for _, v in sizes], color=_MATCH)
    ax.set_yscale("symlog", linthresh=1)
    ax.set_xlabel("records in the entity")
    ax.set_ylabel("entities (log scale)")
    words = ", ".join(f"{v:,} of size {k}" for k, v in sizes)
    return f"Entities by number of records: {words}"


#: The summary counts the changes chart shows per run.
CHANGES: Final = (
    "new_records", "updated_records", "moved_records", "withdrawn_records", "merged_entities",
)  # fmt: skip
_SERIES: Final = (
    ("new_records", "new", _MATCH),
    ("updated_records", "updated", "#6a9f3a"),
    ("moved_records", "moved", _OTHER),
    ("withdrawn_records", "withdrawn", "#7b3294"),
    ("merged_entities", "entities merged", "#444444"),
)


def _changes(ax: Any, data: dict[str, Any]) -> str:
    runs = data["runs"]
    names = [r["name"] for r in runs]
    x = list(range(len(runs)))
    width = 0.8 / len(_SERIES)
    for k, (key, label, colour) in enumerate(_SERIES):
        ax.bar([i + (k - 2) * width for i in x], [r.get(key, 0) for r in runs], width=width,
               label=label, color=colour)  # fmt: skip
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_yscale("symlog", linthresh=1)
    ax.set_ylabel("records (log scale)")
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.02), frameon=False, ncols=len(_SERIES))
    return f"New, updated, moved and withdrawn records and merged entities over {len(runs)} runs"


_DRAWERS: Final = {
    "histogram": _histogram,
    "curve": _curve,
    "sizes": _sizes,
    "changes": _changes,
}


def score_histogram(edges: list[float], counts: list[int], threshold: float) -> str:
    """The scores of a run's candidate pairs, coloured by which side of the threshold."""
    return _draw("histogram", json.dumps({"edges": edges, "counts": counts,
                                          "threshold": threshold}))  # fmt: skip


def precision_recall(curve: dict[str, list[float | None]], chosen: float) -> str:
    """The label-free estimated precision and recall at every threshold, and the chosen one."""
    return _draw("curve", json.dumps({**curve, "chosen": chosen}))


def entity_sizes(sizes: dict[str, int]) -> str:
    """How many entities hold 1, 2, 3 … records."""
    return _draw("sizes", json.dumps({"sizes": sizes}, sort_keys=True))


def changes_over_runs(runs: list[dict[str, Any]]) -> str:
    """Per run (oldest first): records new, updated, moved, withdrawn; entities merged.

    Args:
        runs: One dict per run with ``name`` and the summary's counts.
    """
    return _draw("changes", json.dumps({"runs": runs}, sort_keys=True))


def run_label(position: int, run_id: str) -> str:
    """How the changes chart names a run: its number in the project and the start of its ID."""
    return f"{position + 1}: {run_id[:6]}"


def draw_run(threshold: float, diagnostics: dict[str, Any], summary: dict[str, Any],
             history: list[dict[str, Any]]) -> dict[str, str]:  # fmt: skip
    """Every chart of a finished run, drawn once by the worker so no page waits for them.

    Args:
        threshold: The run's threshold.
        diagnostics: The run's ``distribution`` and ``curve`` (:mod:`linkage_unit.jobs.pipeline`).
        summary: The run's summary (``entity_sizes``).
        history: For the changes chart: the project's finished runs up to this one, oldest
            first, each with ``name`` and the :data:`CHANGES` counts.
    """
    drawn = {"changes": changes_over_runs(history)}
    dist = diagnostics.get("distribution")
    if dist:
        drawn["histogram"] = score_histogram(dist["bin_edges"], dist["histogram"], threshold)
    if diagnostics.get("curve"):
        drawn["curve"] = precision_recall(diagnostics["curve"], threshold)
    if summary.get("entity_sizes"):
        drawn["sizes"] = entity_sizes(summary["entity_sizes"])
    return drawn
