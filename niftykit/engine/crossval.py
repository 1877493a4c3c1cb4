"""K-fold cross-validation: train, infer and evaluate every fold, then summarise.

The subjects (every subject of the config's input sections) are dealt into K
folds by :func:`niftykit.io.write_folds`, shuffled with ``system.seed``; fold
``k`` holds out group ``k`` for inference and trains on the rest, with
``ceil(training.exclude_fraction_for_validation * n_train)`` of them set aside for
validation (``exclude_fraction_for_inference`` is not used: the held-out fold is
the inference set). Each fold runs the engine's :func:`~niftykit.engine.train`,
:func:`~niftykit.engine.infer` and :func:`~niftykit.engine.evaluation.run_evaluation`
on the config with these overrides: ``system.model_dir=<out>/fold_<k>``,
``system.dataset_split_file=<out>/folds/fold_<k>.csv``,
``inference.save_seg_dir=<out>/fold_<k>/segmentation``,
``evaluation.save_csv_dir=<out>/fold_<k>/evaluation``,
``inference.dataset_to_infer=inference``, and ``network.histogram_ref_file`` in the
fold folder (landmarks and label mapping are learnt on the fold's training subjects;
a reference file that already exists outside ``model_dir`` is shared as given).

Resumable fold by fold: a fold whose ``evaluation/evaluation.csv`` exists is
skipped; a fold whose training finished (``crossval_trained.json``, or a checkpoint
of ``training.max_iter``) goes straight to inference; a fold with checkpoints but
unfinished training resumes from its latest checkpoint (``starting_iter: -1``).

``<out>`` holds::

    folds/fold_<k>.csv        the split of fold k (subject_id,phase)
    fold_<k>/                 fold k's model_dir (models/, logs/, segmentation/, evaluation/)
    crossval.json             config, K, seed, held-out subjects of each fold
    crossval_evaluation.csv   fold,subject_id,<unit>,<metrics>: every held-out subject's rows
    crossval_summary.csv      <unit>,name,metric,n,mean,sd,median,folds,fold_mean,fold_sd

The summary's ``n, mean, sd, median`` are over held-out subjects of all folds (as
Gibson et al., IEEE TMI 2018, report them); ``fold_mean, fold_sd`` are the mean and
sample sd of the K per-fold means. NaN scores are left out; ``inf`` (a distance to a
structure that is missing) is kept, so a mean can be ``inf``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from niftykit.application import make_application
from niftykit.engine.evaluation import STATISTICS, statistics
from niftykit.errors import ConfigError, DataError
from niftykit.io import (
    load_or_create_split,
    subjects_in_phase,
    write_csv,
    write_folds,
    write_text,
)

__all__ = ["run_crossval", "CrossvalSummary", "summarise_crossval", "read_fold_rows", "summarise_rows",
           "fold_overrides", "SUMMARY_CSV", "EVALUATION_CSV", "SUMMARY_COLUMNS"]

log = logging.getLogger("niftykit")

SUMMARY_CSV = "crossval_summary.csv"
EVALUATION_CSV = "crossval_evaluation.csv"
MANIFEST = "crossval.json"
TRAINED = "crossval_trained.json"
#: columns of crossval_summary.csv after the unit column
SUMMARY_COLUMNS = ("name", "metric", *STATISTICS, "folds", "fold_mean", "fold_sd")
_UNITS = ("label", "foreground", "component")
#: code -> name of the units; None: no names (codes are shown)
Namer = Callable[[Sequence[Any]], Mapping[Any, str]]


@dataclass
class CrossvalSummary:
    """The cross-validation's per-subject rows and their statistics.

    Attributes:
        out: the cross-validation folder.
        folds: K.
        finished: folds whose evaluation exists.
        unit: the unit column (``label``, ``foreground`` or ``component``).
        metrics: the metric columns, in CSV order.
        rows: one dict per held-out subject and unit: ``fold``, ``subject_id``, the unit,
            metric -> float.
        stats: unit -> metric -> ``n, mean, sd, median`` over subjects, ``folds,
            fold_mean, fold_sd`` over the per-fold means.
        names: unit -> name (empty when unknown).
    """

    out: Path
    folds: int
    finished: List[int]
    unit: str = "label"
    metrics: List[str] = field(default_factory=list)
    rows: List[Dict[str, Any]] = field(default_factory=list)
    stats: Dict[Any, Dict[str, Dict[str, float]]] = field(default_factory=dict)
    names: Dict[Any, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every fold evaluated."""
        return len(self.finished) == self.folds

    def table(self) -> str:
        """An aligned text table: one row per unit and metric."""
        head = [self.unit, "name", "metric", *STATISTICS, "fold mean", "fold sd"]
        rows = [head]
        for unit, metrics in self.stats.items():
            for metric, values in metrics.items():
                rows.append([str(unit), self.names.get(unit, ""), metric,
                             *(_number(values[c], c) for c in STATISTICS),
                             _number(values["fold_mean"], ""), _number(values["fold_sd"], "")])
        if not self.names:
            rows = [row[:1] + row[2:] for row in rows]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        text = [f"cross-validation over {self.folds} folds, {len(self.subjects())} held-out "
                "subjects: n, mean, sd (sample), median over subjects; fold mean and sd over "
                f"the {self.folds} per-fold means"]
        for row in rows:
            text.append("  ".join(c.ljust(w) if i < len(row) - 6 else c.rjust(w)
                                  for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        return "\n".join(text)

    def subjects(self) -> List[str]:
        """The held-out subjects, in row order."""
        return list(dict.fromkeys(row["subject_id"] for row in self.rows))


def _number(value: Any, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if column in ("n", "folds"):
        return str(int(value))
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.4f}"


# -- per-subject rows and their statistics ------------------------------------------------
def _float(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _key(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return text


def read_fold_rows(path: Path, fold: int) -> Tuple[str, List[str], List[Dict[str, Any]]]:
    """``(unit column, metric columns, rows)`` of one fold's ``evaluation.csv``.

    Raises:
        DataError: the file has no unit column (not a segmentation evaluation).
    """
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        found = list(reader)
    unit = next((c for c in _UNITS if c in columns), None)
    if unit is None or "subject_id" not in columns:
        raise DataError(f"{path}: expected the columns subject_id and one of {', '.join(_UNITS)} "
                        f"(a segmentation evaluation), got {', '.join(columns)}")
    metrics = [c for c in columns if c not in ("subject_id", unit)]
    rows = [{"fold": fold, "subject_id": row["subject_id"], unit: _key(row[unit]),
             **{m: _float(row[m]) for m in metrics}} for row in found]
    return unit, metrics, rows


def _unit_of(row: Mapping[str, Any], unit: str) -> Any:
    return "all" if unit == "component" else row[unit]


def summarise_rows(rows: Sequence[Mapping[str, Any]], unit: str,
                   metrics: Sequence[str]) -> Dict[Any, Dict[str, Dict[str, float]]]:
    """unit value -> metric -> statistics over subjects and over per-fold means.

    Over subjects: :func:`~niftykit.engine.evaluation.statistics` of every row's score
    (NaN left out). Over folds: each fold's mean of its (non-NaN) scores, then the mean
    and sample sd of those means (``folds`` = folds with a score).
    """
    units = list(dict.fromkeys(_unit_of(row, unit) for row in rows))
    if all(isinstance(u, int) for u in units):
        units.sort()
    stats: Dict[Any, Dict[str, Dict[str, float]]] = {}
    for value in units:
        mine = [row for row in rows if _unit_of(row, unit) == value]
        for metric in metrics:
            entry = dict(statistics([row[metric] for row in mine]))
            by_fold: Dict[int, List[float]] = {}
            for row in mine:
                if not math.isnan(row[metric]):
                    by_fold.setdefault(row["fold"], []).append(row[metric])
            means = [float(np.mean(v)) for _, v in sorted(by_fold.items())]
            over = statistics(means)
            entry.update(folds=over["n"], fold_mean=over["mean"], fold_sd=over["sd"])
            stats.setdefault(value, {})[metric] = entry
    return stats


# -- the folds ----------------------------------------------------------------------------
def _inside(path: Path, folder: Path) -> Optional[Path]:
    try:
        return Path(path).relative_to(folder)
    except ValueError:
        return None


def fold_overrides(base: Any, fold_dir: Path, split_file: Path) -> List[str]:
    """The overrides that make ``base`` (a loaded Config) train and infer one fold."""
    found = [f"system.model_dir={fold_dir}", f"system.dataset_split_file={split_file}",
             f"inference.save_seg_dir={fold_dir / 'segmentation'}",
             f"evaluation.save_csv_dir={fold_dir / 'evaluation'}",
             "inference.dataset_to_infer=inference"]
    ref = Path(base.network.histogram_ref_file)
    relative = _inside(ref, Path(base.system.model_dir))
    if relative is not None or not ref.exists():
        found.append(f"network.histogram_ref_file={fold_dir / (relative or ref.name)}")
    else:
        log.info("histogram reference %s exists outside model_dir: every fold uses it as is", ref)
    return found


def _split_files(base: Any, subjects: List[str], folds: int, split_dir: Path,
                 overwrite: bool, strata: Optional[Mapping[str, Any]] = None) -> List[Path]:
    """The fold files: written, or (resuming) checked against the subjects."""
    paths = [split_dir / f"fold_{k}.csv" for k in range(folds)]
    fraction = base.training.exclude_fraction_for_validation
    if overwrite or not any(p.exists() for p in paths):
        return write_folds(split_dir, subjects, folds, seed=base.system.seed,
                           validation_fraction=fraction, overwrite=overwrite, strata=strata)
    held: List[str] = []
    for path in paths:
        if not path.exists():
            raise DataError(f"{path} is missing but other fold files exist in {split_dir}; pass "
                            "--overwrite to draw the folds again")
        held += subjects_in_phase(load_or_create_split(path, subjects), "inference")
    extra = [p for p in split_dir.glob("fold_*.csv") if p not in paths]
    if sorted(held) != sorted(subjects) or extra:
        raise DataError(f"the fold files in {split_dir} do not deal the {len(subjects)} subjects "
                        f"into {folds} folds (other subjects or another K); pass --overwrite to "
                        "draw them again (earlier fold results are then replaced)")
    return paths


def _latest_checkpoint(fold_dir: Path) -> Optional[int]:
    found = [int(p.name.split("-")[-1].split(".")[0])
             for p in (fold_dir / "models").glob("model.ckpt-*.index")]
    return max(found) if found else None


def _trained(fold_dir: Path, max_iter: int) -> bool:
    marker = fold_dir / TRAINED
    if marker.exists():
        try:
            if json.loads(marker.read_text(encoding="utf-8")).get("max_iter") == max_iter:
                return True
        except ValueError:
            pass
    latest = _latest_checkpoint(fold_dir)
    return latest is not None and latest >= max_iter


def _load(config: Any, overrides: Sequence[str]) -> Any:
    from niftykit.config import check_supported, load_config
    loaded = load_config(config, list(overrides))
    check_supported(loaded)
    return loaded


def _run_fold(config: Any, overrides: List[str], fold: int, fold_dir: Path, debug: bool) -> None:
    """Train (or resume), infer and evaluate one fold."""
    from niftykit.engine.evaluation import run_evaluation
    from niftykit.engine.inference import infer
    from niftykit.engine.trainer import train
    probe = _load(config, overrides)
    max_iter = probe.training.max_iter
    if _trained(fold_dir, max_iter):
        log.info("fold %d: training finished earlier; inferring", fold)
    else:
        latest = _latest_checkpoint(fold_dir)
        start = "-1" if latest is not None else "0"
        if latest is not None:
            log.info("fold %d: resuming training from the checkpoint of iteration %d", fold, latest)
        app = make_application(_load(config, overrides + [f"training.starting_iter={start}"]))
        train(app, overwrite=False, debug=debug)
        write_text(fold_dir / TRAINED, json.dumps(
            {"max_iter": max_iter, "latest": _latest_checkpoint(fold_dir)}) + "\n", overwrite=True)
    app = make_application(probe)
    infer(app, overwrite=True, debug=debug)
    run_evaluation(app, overwrite=True)
    keras = sys.modules.get("keras")
    if keras is not None:  # free the finished fold's Keras state
        keras.backend.clear_session()


def _manifest(out: Path, config: Any, base: Any, folds: int, files: List[Path],
              subjects: List[str]) -> None:
    held = {f"fold_{k}": subjects_in_phase(load_or_create_split(p, subjects), "inference")
            for k, p in enumerate(files)}
    data = {"config": str(config), "folds": folds, "seed": base.system.seed,
            "validation_fraction": base.training.exclude_fraction_for_validation,
            "subjects": len(subjects), "held_out": held}
    write_text(out / MANIFEST, json.dumps(data, indent=1) + "\n", overwrite=True)


def _fold_count(out: Path) -> int:
    """K from ``crossval.json``, else from the ``fold_<k>`` folders."""
    manifest = out / MANIFEST
    if manifest.exists():
        return int(json.loads(manifest.read_text(encoding="utf-8"))["folds"])
    found = [int(p.name[5:]) for p in out.glob("fold_*") if p.is_dir() and p.name[5:].isdigit()]
    if not found:
        raise DataError(f"{out} is not a cross-validation folder (no {MANIFEST}, no fold_<k>/); "
                        "run `niftykit crossval` first")
    return max(found) + 1


def summarise_crossval(out: Path, folds: Optional[int] = None,
                       namer: Optional[Namer] = None) -> CrossvalSummary:
    """The per-subject rows and statistics of the folds of ``out`` evaluated so far.

    Args:
        out: the cross-validation folder.
        folds: K (default: from ``crossval.json`` or the fold folders).
        namer: unit codes -> names.
    """
    out = Path(out)
    folds = _fold_count(out) if folds is None else folds
    summary = CrossvalSummary(out, folds, [])
    units = set()
    for fold in range(folds):
        path = out / f"fold_{fold}" / "evaluation" / "evaluation.csv"
        if not path.exists():
            continue
        unit, metrics, rows = read_fold_rows(path, fold)
        units.add(unit)
        summary.finished.append(fold)
        summary.unit = unit
        summary.metrics = list(dict.fromkeys(summary.metrics + metrics))
        summary.rows += rows
    if len(units) > 1:
        raise DataError(f"the folds in {out} were evaluated with different units "
                        f"({', '.join(sorted(units))}); evaluate them alike")
    for row in summary.rows:
        for metric in summary.metrics:
            row.setdefault(metric, math.nan)
    summary.stats = summarise_rows(summary.rows, summary.unit, summary.metrics)
    if namer is not None and summary.unit == "label":
        summary.names = {k: v for k, v in namer(list(summary.stats)).items() if v}
    return summary


def _write_tables(summary: CrossvalSummary) -> None:
    unit, metrics = summary.unit, summary.metrics
    write_csv(summary.out / EVALUATION_CSV,
              ([row["fold"], row["subject_id"], row[unit], *(row[m] for m in metrics)]
               for row in summary.rows),
              header=("fold", "subject_id", unit, *metrics), overwrite=True)
    lines = []
    for value, per_metric in summary.stats.items():
        for metric, s in per_metric.items():
            lines.append([value, summary.names.get(value, ""), metric,
                          *(s[c] for c in STATISTICS), s["folds"], s["fold_mean"], s["fold_sd"]])
    write_csv(summary.out / SUMMARY_CSV, lines, header=(unit, *SUMMARY_COLUMNS), overwrite=True)


def run_crossval(config: Any, overrides: Sequence[str] = (), *, folds: int,
                 out: Optional[Path] = None, only: Optional[int] = None,
                 overwrite: bool = False, debug: bool = False,
                 namer: Optional[Namer] = None) -> CrossvalSummary:
    """Run (or resume) K-fold cross-validation of a config (see the module docstring).

    Args:
        config: the config file.
        overrides: ``section.key=value`` overrides (the command line's).
        folds: K, at least 2 and at most the number of subjects.
        out: the cross-validation folder (default ``<model_dir>/crossval``).
        only: run this fold alone (0-based); the summary is written once all are done.
        overwrite: draw the folds again and redo the folds run (their folders are deleted).
        debug: keep TensorFlow's logs.
        namer: unit codes -> names for the summary (e.g. organ names); None: codes only.

    Returns:
        The summary of the folds evaluated so far (``complete`` when all are).

    Raises:
        NiftykitError: bad config or data, ``only`` out of range, fold files that do not
            match the subjects (without ``overwrite``), or any engine error of a fold.
    """
    base = _load(config, overrides)
    if base.segmentation is None:
        raise ConfigError(f"{base.source}: crossval summarises segmentation evaluations; for "
                          f"application '{base.application}' write the folds with `niftykit "
                          "split --folds K` and train each one")
    if only is not None and not 0 <= only < folds:
        raise ConfigError(f"crossval: --fold {only} is not among the folds 0..{folds - 1}")
    out = Path(out).absolute() if out is not None else Path(base.system.model_dir) / "crossval"
    app = make_application(base)
    found = app.subjects("all")
    subjects = [s.id for s in found]
    strata = app.strata(found)
    if base.training.exclude_fraction_for_inference > 0:
        log.info("crossval: training.exclude_fraction_for_inference is not used; each fold's "
                 "held-out subjects are its inference set")
    files = _split_files(base, subjects, folds, out / "folds", overwrite, strata)
    _manifest(out, config, base, folds, files, subjects)
    for fold in ([only] if only is not None else range(folds)):
        fold_dir = out / f"fold_{fold}"
        if overwrite and fold_dir.exists():
            shutil.rmtree(fold_dir)
        if (fold_dir / "evaluation" / "evaluation.csv").exists():
            log.info("fold %d of %d: evaluated earlier (%s), skipped", fold, folds,
                     fold_dir / "evaluation" / "evaluation.csv")
            continue
        log.info("fold %d of %d: %s", fold, folds, fold_dir)
        _run_fold(config, list(overrides) + fold_overrides(base, fold_dir, files[fold]),
                  fold, fold_dir, debug)
    summary = summarise_crossval(out, folds, namer)
    if summary.complete:
        _write_tables(summary)
        log.info("%s\nwrote %s and %s", summary.table(), out / SUMMARY_CSV, out / EVALUATION_CSV)
    else:
        pending = [k for k in range(folds) if k not in summary.finished]
        log.info("folds evaluated: %s; still to run: %s (niftykit crossval ... --fold K); %s is "
                 "written when all %d are done", summary.finished or "none", pending,
                 SUMMARY_CSV, folds)
    return summary
