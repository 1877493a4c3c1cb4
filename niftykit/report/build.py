"""``niftykit report``: one HTML page with the scores, box plots, loss curves and overlays
of a training run (``model_dir``) or of a cross-validation folder.

Reads what the engine wrote: ``evaluation/evaluation.csv`` (per subject and label),
``logs/{training,validation}`` (TensorBoard ``loss``), ``segmentation/inferred.csv``
(the predictions), and the config's input sections (CT and reference of each subject).
Writes ``<out>/index.html`` and its PNGs beside it (default ``out``:
``<model_dir>/report`` or ``<crossval>/report``).
"""

from __future__ import annotations

import csv
import datetime
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from niftykit.errors import DataError, NiftykitError
from niftykit.io import write_text
from niftykit.report.events import loss_curves
from niftykit.report.html import Figure, Page, render, score_table
from niftykit.report.names import GIBSON_2018_DICE, is_abdominal, label_names

__all__ = ["write_report", "ReportData", "pick_cases"]

log = logging.getLogger("niftykit")
_BOX_METRICS = ("dice", "hausdorff95")


@dataclass
class ReportData:
    """What the report shows, gathered from a run or a cross-validation.

    Attributes:
        title: page title.
        unit: the evaluation unit column (``label`` ...).
        metrics: metric columns.
        rows: per-subject rows (``fold``, ``subject_id``, unit, metric -> float).
        stats: unit -> metric -> statistics (see :mod:`niftykit.engine.crossval`).
        runs: run name -> model_dir (one per fold for a cross-validation).
        crossval: True for a cross-validation.
    """

    title: str
    unit: str
    metrics: List[str]
    rows: List[Dict[str, Any]]
    stats: Dict[Any, Dict[str, Dict[str, float]]]
    runs: Dict[str, Path] = field(default_factory=dict)
    crossval: bool = False


def _gather(config: Any, crossval: Optional[Path]) -> ReportData:
    from niftykit.engine.crossval import (
        read_fold_rows,
        summarise_crossval,
        summarise_rows,
    )
    if crossval is not None:
        summary = summarise_crossval(Path(crossval))
        if not summary.rows:
            raise DataError(f"{crossval}: no fold has been evaluated yet; run `niftykit crossval`")
        runs = {f"fold {k}": Path(crossval) / f"fold_{k}" for k in summary.finished}
        title = f"Cross-validation report: {len(summary.finished)} of {summary.folds} folds"
        return ReportData(title, summary.unit, summary.metrics, summary.rows, summary.stats,
                          runs, True)
    path = Path(config.evaluation.save_csv_dir) / "evaluation.csv"
    if not path.exists():
        raise DataError(f"{path} not found; run `niftykit infer` and `niftykit evaluate` first "
                        "(or give --crossval DIR)")
    unit, metrics, rows = read_fold_rows(path, 0)
    stats = summarise_rows(rows, unit, metrics)
    return ReportData("Training run report", unit, metrics, rows, stats,
                      {"run": Path(config.system.model_dir)})


def _inferred(data: ReportData, config: Any) -> Dict[str, Path]:
    """Subject -> predicted label map, from each run's ``inferred.csv``."""
    found: Dict[str, Path] = {}
    for folder in data.runs.values():
        seg = folder / "segmentation" if data.crossval else Path(config.inference.save_seg_dir)
        index = seg / "inferred.csv"
        if index.exists():
            with index.open(newline="", encoding="utf-8") as handle:
                for row in csv.reader(handle):
                    if len(row) == 2 and row[0] != "subject_id":
                        path = Path(row[1]) if Path(row[1]).is_absolute() else seg / row[1]
                        found[row[0]] = path
    return found


def pick_cases(rows: List[Mapping[str, Any]], count: int) -> List[str]:
    """Up to ``count`` subjects spread over the range of mean Dice: the lowest, the median,
    the highest, then the others in order (all subjects in order without a ``dice``)."""
    scores: Dict[str, List[float]] = {}
    for row in rows:
        value = row.get("dice", math.nan)
        scores.setdefault(row["subject_id"], []).append(value)
    means = {s: float(np.nanmean(v)) if np.isfinite(v).any() else -1.0 for s, v in scores.items()}
    order = sorted(means, key=lambda s: (means[s], s))
    spread = [order[0], order[len(order) // 2], order[-1]] if order else []
    picked = list(dict.fromkeys(spread + order))
    return picked[:max(0, count)]


def _case_sources(config: Any) -> Dict[str, Tuple[Path, Path]]:
    """Subject -> (first image file, reference label file) of a segmentation config."""
    from niftykit.application import make_application
    if config.segmentation is None:
        return {}
    app = make_application(config)
    image, label = app.task.image[0], app.task.label[0] if app.task.label else None
    if label is None:
        return {}
    try:
        subjects = app.subjects("evaluation")
    except NiftykitError as exc:  # the tables and plots do not need the images
        log.warning("report: no overlays: %s", exc)
        return {}
    return {s.id: (Path(s.paths[image]), Path(s.paths[label])) for s in subjects}


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "case"


def _overlays(data: ReportData, config: Any, out: Path, codes: List[Any],
              names: Mapping[Any, str], count: int) -> Tuple[List[Figure], str]:
    from niftykit.report.plots import overlay_plot
    from niftykit.report.views import load_case
    predictions = _inferred(data, config)
    sources = _case_sources(config)
    figures, skipped = [], []
    labelled = data.unit == "label"
    int_codes = [c for c in codes if isinstance(c, int)]
    for subject in pick_cases(data.rows, count):
        if subject not in predictions or subject not in sources:
            skipped.append(f"{subject} (no prediction or reference found)")
            continue
        case = load_case(subject, *sources[subject], predictions[subject])
        if case is None:
            skipped.append(f"{subject} (not NIfTI files on one grid)")
            continue
        dice = [r.get("dice", math.nan) for r in data.rows if r["subject_id"] == subject]
        drawn = int_codes if labelled else sorted(  # foreground/cc units: every code present
            int(c) for c in np.union1d(case.reference, case.prediction) if c != 0)
        path = overlay_plot(case, drawn, names, out / f"case_{_file_name(subject)}.png")
        mean = f"mean Dice {np.nanmean(dice):.3f}" if np.isfinite(dice).any() else "no Dice"
        figures.append(Figure(path.name, f"{subject} ({mean}): per label, the slices through "
                                         "its reference centroid"))
    note = ("Radiological convention: volumes reoriented (nibabel, closest canonical RAS+) so "
            "that axial slices are seen from the feet and coronal from the front, the patient's "
            "left on the image right; sagittal seen from the patient's left, anterior on the "
            "image left; superior and anterior up. CT window W400/L40 HU (other images: 1st-99th "
            "percentile). Reference contours solid, prediction dashed. Cases: lowest, median and "
            "highest mean Dice.")
    if skipped:
        note += " Skipped: " + "; ".join(skipped) + "."
    return figures, note


def _box_plots(data: ReportData, out: Path, names: Mapping[Any, str]) -> List[Figure]:
    from niftykit.report.plots import box_plot
    figures = []
    for metric in [m for m in _BOX_METRICS if m in data.metrics]:
        scores: Dict[str, List[float]] = {}
        for value in data.stats:
            label = f"{value} {names[value]}" if value in names else str(value)
            scores[label] = [r[metric] for r in data.rows
                             if (r[data.unit] if data.unit != "component" else "all") == value]
        path = box_plot(scores, out / f"{metric}_boxplot.png", metric,
                        f"{metric} per {data.unit}, {len({r['subject_id'] for r in data.rows})} "
                        "subjects")
        figures.append(Figure(path.name, f"{metric} per {data.unit} over held-out subjects "
                                         "(box: quartiles and median; dots: subjects)"))
    return figures


def _losses(data: ReportData, out: Path) -> Tuple[List[Figure], str]:
    from niftykit.report.plots import loss_plot
    curves = {run: loss_curves(folder) for run, folder in data.runs.items()}
    curves = {run: c for run, c in curves.items() if c}
    if not curves:
        return [], "No TensorBoard loss scalars found under logs/ (training.tensorboard_every_n)."
    path = loss_plot(curves, out / "loss.png")
    return [Figure(path.name, "training loss (solid) and validation loss (dashed) against "
                              "iteration, read from the TensorBoard event files")], ""


def write_report(config: Any, *, crossval: Optional[Path] = None, out: Optional[Path] = None,
                 names: str = "auto", cases: int = 3) -> Path:
    """Write ``index.html`` and its PNGs; returns the page.

    Args:
        config: the loaded Config (its input sections find the CT and reference images).
        crossval: a ``niftykit crossval`` folder, or None for the config's own run.
        out: the report folder (default ``<crossval or model_dir>/report``).
        names: how labels are named (:data:`~niftykit.report.names.NAME_MODES`).
        cases: how many subjects get overlay figures.

    Raises:
        DataError: nothing evaluated yet.
    """
    data = _gather(config, crossval)
    base = Path(crossval) if crossval is not None else Path(config.system.model_dir)
    out = Path(out) if out is not None else base / "report"
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("case_*.png"):  # overlays of an earlier report
        stale.unlink()
    codes = list(data.stats)
    label_unit = data.unit == "label"
    named = label_names(codes, config, names) if label_unit else {}
    paper = GIBSON_2018_DICE if label_unit and is_abdominal(codes) else None
    page = Page(data.title, facts=_facts(config, crossval, data))
    page.table = score_table(data.stats, data.metrics, named, data.unit, paper, data.crossval)
    page.notes = _notes(data, paper is not None)
    page.sections["Box plots"] = _box_plots(data, out, named)
    page.sections["Loss curves"], loss_note = _losses(data, out)
    if loss_note:
        page.section_notes["Loss curves"] = loss_note
    figures, overlay_note = _overlays(data, config, out, codes, named, cases)
    page.sections["Prediction against reference"] = figures
    page.section_notes["Prediction against reference"] = overlay_note
    index = write_text(out / "index.html", render(page), overwrite=True)
    log.info("report: %s", index)
    return index


def _facts(config: Any, crossval: Optional[Path], data: ReportData) -> List[tuple]:
    network = config.network.name
    saved = next(iter(data.runs.values()), Path()) / "config.yaml"
    if saved.is_file():  # the run's own resolved config (a crossval may override the network)
        from niftykit.config import load_config
        network = load_config(saved).network.name
    facts = [("config", config.source), ("network", network),
             ("subjects", len({r["subject_id"] for r in data.rows})),
             ("written", datetime.datetime.now().isoformat(timespec="seconds"))]
    if crossval is not None:
        facts.insert(1, ("cross-validation folder", Path(crossval).absolute()))
    return facts


def _notes(data: ReportData, paper: bool) -> List[str]:
    notes = ["n, mean, sd (sample) and median are over the held-out subjects (each subject "
             "once); NaN scores are left out, inf distances (a structure missing from the "
             "prediction) are kept, so a mean can be inf."]
    if data.crossval:
        notes.append("'fold means': mean ± sd of the per-fold means (one number per fold).")
    if paper:
        notes.append("Paper column: the dense V-network's mean Dice in Gibson et al., IEEE TMI "
                     "37(8) 1822-1834, 2018 (Table V), cross-validation over 90 real CTs "
                     "(niftykit.report.names.GIBSON_2018_DICE). Scores on other data, or on "
                     "synthetic phantoms, are not a reproduction of the paper's numbers.")
    return notes
