"""The report's figures as PNG files (matplotlib, Agg backend, imported on first use).

Every function writes one file and returns its path; the files open on their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from niftykit.report.views import Case, label_points, views_through

__all__ = ["box_plot", "loss_plot", "overlay_plot", "label_colours"]

_DPI = 96
#: CT display window (abdominal soft tissue: width 400 HU, level 40 HU)
CT_WINDOW = (-160.0, 240.0)


def _pyplot() -> Any:
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def _save(fig: Any, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), dpi=_DPI, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def label_colours(codes: Sequence[Any]) -> Dict[Any, Tuple[float, ...]]:
    """A distinct colour per code (matplotlib's tab10/tab20)."""
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if len(codes) <= 10 else "tab20")
    return {code: cmap(i % cmap.N) for i, code in enumerate(codes)}


def box_plot(scores: Mapping[str, Sequence[float]], path: Path, metric: str,
             title: str) -> Path:
    """Box plots of ``metric`` per unit (``name -> scores``), each subject a dot.

    Non-finite scores (NaN, a missing structure's inf distance) are left out; the axis
    label says how many.
    """
    plt = _pyplot()
    names = list(scores)
    kept = [np.array([v for v in scores[n] if np.isfinite(v)], float) for n in names]
    dropped = sum(len(scores[n]) for n in names) - sum(len(k) for k in kept)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(names) + 1.5), 3.6))
    ax.boxplot([k if k.size else [np.nan] for k in kept], showfliers=False)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right")
    rng = np.random.default_rng(0)
    for index, values in enumerate(kept, start=1):
        ax.plot(index + rng.uniform(-0.12, 0.12, values.size), values, "o", ms=3, alpha=0.6,
                color="tab:blue")
    ax.set_ylabel(metric + (f" ({dropped} non-finite left out)" if dropped else ""))
    if metric == "dice":
        ax.set_ylim(0.0, 1.0)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def loss_plot(curves: Mapping[str, Mapping[str, List[Tuple[int, float]]]], path: Path) -> Path:
    """Training (solid) and validation (dashed, dots) loss against iteration, one colour
    per run (``run name -> {"training": curve, "validation": curve}``)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    colours = label_colours(list(curves))
    for run, parts in curves.items():
        for phase, style in (("training", "-"), ("validation", "--o")):
            curve = parts.get(phase) or []
            if curve:
                steps, values = zip(*curve)
                ax.plot(steps, values, style, color=colours[run], ms=3, lw=1,
                        label=f"{run} {phase}" if len(curves) > 1 else phase)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def _window(image: np.ndarray) -> Tuple[float, float]:
    """The abdominal CT window for images in HU, else the 1st-99th percentile."""
    if float(image.min()) <= -500.0:
        return CT_WINDOW
    low, high = np.percentile(image, [1, 99])
    return float(low), float(high) if high > low else float(low) + 1.0


def _draw(ax: Any, view: Any, codes: Sequence[int], colours: Mapping[int, Any],
          window: Tuple[float, float]) -> None:
    ax.imshow(view.image, cmap="gray", vmin=window[0], vmax=window[1], aspect=view.aspect,
              interpolation="nearest")
    for code in codes:
        for labels, style in ((view.reference, "solid"), (view.prediction, "dashed")):
            mask = (labels == code).astype(float)
            if mask.any() and mask.min() < 1:
                ax.contour(mask, levels=[0.5], colors=[colours[code]], linestyles=style,
                           linewidths=1.0)
    ax.set_xticks([])
    ax.set_yticks([])


def overlay_plot(case: Case, codes: Sequence[int], names: Mapping[int, str], path: Path) -> Path:
    """One row per label present: the axial, coronal and sagittal slices through the
    label's reference centroid, reference contours solid, prediction contours dashed,
    every label drawn in its colour (see :mod:`niftykit.report.views` for the orientation)."""
    plt = _pyplot()
    rows = [(code, views_through(case, point))
            for code, point in label_points(case, list(codes)).items()]
    colours = label_colours(list(codes))
    window = _window(case.image)
    ratio = max([v.image.shape[0] * v.aspect / v.image.shape[1] for _, vs in rows for v in vs]
                or [1.0])
    height = 3.0 * float(np.clip(ratio, 0.3, 2.0)) + 0.4
    fig, axes = plt.subplots(max(1, len(rows)), 3, figsize=(9.0, height * max(1, len(rows))),
                             squeeze=False, layout="constrained")
    for row, (code, views) in enumerate(rows):
        for ax, view in zip(axes[row], views):
            _draw(ax, view, codes, colours, window)
            ax.set_title(f"{names.get(code, f'label {code}')}: {view.name}", fontsize=9)
    for ax in axes.flat[len(rows) * 3:]:
        ax.axis("off")
    fig.suptitle(f"{case.subject}: reference solid, prediction dashed; patient's left on the "
                 "image right", fontsize=10)
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color=colours[c], lw=2) for c in codes]
    fig.legend(handles, [names.get(c, f"label {c}") for c in codes], loc="outside lower center",
               ncol=min(len(codes), 5), fontsize=8, frameon=False)
    return _save(fig, path)
