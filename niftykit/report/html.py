"""The report page: plain, self-contained HTML (inline CSS, PNGs linked by relative path).

Every text that comes from data (subject ids, names, paths) is escaped.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

__all__ = ["Figure", "Page", "render", "score_table"]

_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 75em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th { background: #eee; } td.text { text-align: left; }
figure { display: inline-block; margin: 0.5em 1em 1em 0; vertical-align: top; }
figcaption { font-size: 0.9em; color: #444; max-width: 60em; }
p.note { font-size: 0.9em; color: #444; max-width: 60em; }
"""


@dataclass
class Figure:
    """A PNG (path relative to the page) and its caption."""

    src: str
    caption: str


@dataclass
class Page:
    """What the page shows, section by section.

    Attributes:
        title: the page title.
        facts: (label, value) lines under the title (config, folds, date ...).
        table: the score table's HTML (from :func:`score_table`).
        notes: paragraphs under the table.
        sections: section title -> figures.
        section_notes: section title -> a paragraph under its heading.
    """

    title: str
    facts: List[tuple] = field(default_factory=list)
    table: str = ""
    notes: List[str] = field(default_factory=list)
    sections: Dict[str, List[Figure]] = field(default_factory=dict)
    section_notes: Dict[str, str] = field(default_factory=dict)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Optional[float], digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}f}"


def score_table(stats: Mapping[Any, Mapping[str, Mapping[str, float]]], metrics: Sequence[str],
                names: Mapping[Any, str], unit: str, paper: Optional[Mapping[Any, float]] = None,
                fold_means: bool = False) -> str:
    """The per-unit table: for each metric ``mean ± sd`` and the median over subjects
    (and the mean ± sd of the fold means when ``fold_means``); the paper's Dice beside
    it when ``paper`` is given."""
    head = [unit] + (["name"] if names else []) + ["n"]
    for metric in metrics:
        head += [f"{metric} mean ± sd", f"{metric} median"]
        if fold_means:
            head.append(f"{metric} fold means")
    if paper is not None:
        head.append("dice, Gibson et al. 2018")
    lines = ["<table id=\"scores\">", "<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head)
             + "</tr></thead>", "<tbody>"]
    for value, per_metric in stats.items():
        first = next(iter(per_metric.values()), {})
        cells = [f"<td class=\"text\">{_e(value)}</td>"]
        if names:
            cells.append(f"<td class=\"text\">{_e(names.get(value, ''))}</td>")
        cells.append(f"<td>{_e(int(first.get('n', 0)))}</td>")
        for metric in metrics:
            s = per_metric.get(metric, {})
            cells.append(f"<td>{_num(s.get('mean'))} ± {_num(s.get('sd'))}</td>")
            cells.append(f"<td>{_num(s.get('median'))}</td>")
            if fold_means:
                cells.append(f"<td>{_num(s.get('fold_mean'))} ± {_num(s.get('fold_sd'))}</td>")
        if paper is not None:
            cells.append(f"<td>{_num(paper.get(value), 2)}</td>")
        lines.append(f"<tr data-unit=\"{_e(value)}\">" + "".join(cells) + "</tr>")
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines)


def render(page: Page) -> str:
    """The page as one HTML document."""
    parts = ["<!DOCTYPE html>", "<html lang=\"en\">", "<head>", "<meta charset=\"utf-8\">",
             f"<title>{_e(page.title)}</title>", f"<style>{_STYLE}</style>", "</head>", "<body>",
             f"<h1>{_e(page.title)}</h1>"]
    if page.facts:
        parts.append("<ul>" + "".join(f"<li>{_e(k)}: {_e(v)}</li>" for k, v in page.facts)
                     + "</ul>")
    parts += ["<h2>Scores</h2>", page.table]
    parts += [f"<p class=\"note\">{_e(note)}</p>" for note in page.notes]
    for title, figures in page.sections.items():
        parts.append(f"<h2>{_e(title)}</h2>")
        if title in page.section_notes:
            parts.append(f"<p class=\"note\">{_e(page.section_notes[title])}</p>")
        if not figures:
            parts.append("<p class=\"note\">none available</p>")
        for fig in figures:
            parts.append(f"<figure><a href=\"{_e(fig.src)}\"><img src=\"{_e(fig.src)}\" "
                         f"alt=\"{_e(fig.caption)}\" style=\"max-width:100%\"></a>"
                         f"<figcaption>{_e(fig.caption)}</figcaption></figure>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)
