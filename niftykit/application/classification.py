"""Classification: one label per image (NiftyNet's ``net_classify``).

Each subject's class comes from the ``label`` input section: a
``csv_data_file`` of ``subject_id,value`` rows, or label images holding one
value (a single voxel, or a constant image). Codes must lie in
``0..num_classes-1``, or ``label_normalisation`` maps the sorted training
codes to them (kept in ``histogram_ref_file``, as for segmentation) and back.

Training feeds the whole image zoomed to the window (``window_sampling:
resize``, NiftyNet's only mode), random windows (``uniform``), 2-D views through
a centre (``multiview``, 2.5-D) or windows with their coarser context as channels
(``multiscale``), augmented as segmentation does; each window carries its
subject's class, so a batch has
``image`` ``(b, x, y, z, c)`` and ``label`` ``(b, 1)`` int32. The network must
give one vector per window (``output_kind = "vector"``: ``resnet``,
``se_resnet``...). Inference writes one CSV per subject,
``<save_seg_dir>/<id><output_postfix>.csv``: ``subject_id,label`` and, with
``output_prob``, a ``prob_<code>`` column per class; evaluation scores them
(accuracy, ROC AUC, confusion matrix).

Screening (two classes, class index 1 the positive, e.g. CAD4TB-style chest
X-rays, Hogeweg et al., IEEE TMI 34(12), 2015): ``training.class_weights``
(``[1, 5]`` or ``auto``) weighs the cross-entropy per class; evaluation adds the
ROC AUC's 95% confidence interval (``evaluation.roc_ci``: DeLong or a stratified
bootstrap) and sensitivity and specificity at ``evaluation.operating_point``
(a threshold on ``prob_<positive>``, or ``sensitivity@S`` / ``specificity@S``
chosen on the evaluated ROC), in ``clinical_metrics.csv`` and the summary. 2-D
files (PNG, JPEG, TIFF) take ``inputs.<name>.pixel_spacing`` (mm) and
``rgb_to_grey`` (read by :class:`~niftykit.io.preprocess.Preprocessor`, for every
application).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from niftykit.application.base import BaseApplication, PredictFn
from niftykit.application.per_image import (Sampler, augmented_sampler, check_network_kind,
                                            check_sampling, images_only, output_file,
                                            predict_vector, resolve_loss, softmax, with_targets)
from niftykit.application.preparation import build_preprocessor, describe, fit_preprocessor
from niftykit.errors import ConfigError, DataError
from niftykit.evaluation import classification_accuracy, confusion_matrix, roc_auc
from niftykit.evaluation.classification import OperatingPoint, screening_report
from niftykit.io import LabelMapping, Subject, read_image, write_csv
from niftykit.io.discovery import DataTable, read_data_csv
from niftykit.io.histogram import read_reference_file
from niftykit.io.preprocess import Preprocessor
from niftykit.loss import LOSSES
from niftykit.sampler import ResizeSampler, UniformSampler

__all__ = ["ClassificationApplication"]

log = logging.getLogger("niftykit")

#: evaluation names -> canonical metric (NiftyNet: ``classification_accuracy``, ``roc_auc``)
METRICS = {"accuracy": "accuracy", "classification_accuracy": "accuracy", "roc_auc": "roc_auc",
           "roc": "roc_auc", "auc": "roc_auc", "confusion_matrix": "confusion_matrix",
           "sensitivity": "sensitivity", "specificity": "specificity"}
PROB = "prob_"
CLINICAL_CSV = "clinical_metrics.csv"


class ClassificationApplication(BaseApplication):
    """Whole-image classification (config section ``classification``)."""

    section = "classification"
    multiscale_inference = True
    LOSS_TYPES = ("CrossEntropy",)

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        where = f"{config.source}: [classification]"
        if not self.task.image:
            raise ConfigError(f"{where} image: required (the input section(s) to classify)")
        if len(self.task.label) > 1:
            raise ConfigError(f"{where} label: give one input section, got {list(self.task.label)}")
        self.num_classes = int(self.task.num_classes)
        self.loss_name = resolve_loss(config, self.LOSS_TYPES, "CrossEntropy", "classification")
        self.class_weights = self._given_class_weights()
        self.mapping: Optional[LabelMapping] = None
        self._preprocessor: Optional[Preprocessor] = None
        self._tables: Dict[Path, DataTable] = {}

    def _given_class_weights(self) -> Union[Tuple[float, ...], str, None]:
        """``training.class_weights`` checked against the classes and the loss."""
        weights = self.config.training.class_weights
        if not weights:
            return None
        where = f"{self.config.source}: [training] class_weights"
        if self.loss_name != "CrossEntropy":
            raise ConfigError(f"{where}: weights the CrossEntropy loss, but loss_type is "
                              f"'{self.loss_name}'")
        if weights != "auto" and len(weights) != self.num_classes:
            raise ConfigError(f"{where}: {len(weights)} weights for num_classes={self.num_classes}; "
                              "give one per class index, e.g. [1, 5], or auto")
        return weights

    def _fit_class_weights(self, subjects: Sequence[Subject]) -> None:
        """``auto`` class weights: inverse class frequency over the training subjects."""
        from niftykit.loss.classification import balanced_class_weights  # Keras: import late

        counts = np.bincount([self.label_index(s) for s in subjects], minlength=self.num_classes)
        try:
            self.class_weights = balanced_class_weights(counts)
        except ValueError as exc:
            raise DataError(f"{self.config.source}: [training] class_weights: auto: {exc}") from None
        log.info("class_weights auto: %s training subjects per class -> weights %s",
                 counts.tolist(), ", ".join(f"{w:.3g}" for w in self.class_weights))

    # -- data -------------------------------------------------------------------
    def input_sources(self, phase: str) -> List[str]:
        sources = list(self.task.image)
        if phase == "inference":
            return sources
        if not self.task.label:
            raise ConfigError(f"{self.config.source}: [classification] label: required for "
                              f"{phase} (the input section holding each subject's class)")
        return sources + [self.task.label[0]]

    @property
    def preprocessor(self) -> Preprocessor:
        """The images' preprocessing (labels are read apart, by :meth:`label_code`)."""
        if self._preprocessor is None:
            self._preprocessor = build_preprocessor(self.config, images_only(self.task),
                                                    self.num_classes)
        return self._preprocessor

    def prepare(self, phase: str, subjects: Sequence[Subject]) -> None:
        """Learn (training) or load the histogram landmarks and the label mapping."""
        self._preprocessor = fit_preprocessor(self.config, images_only(self.task),
                                              self.preprocessor, phase, subjects)
        if self.task.label_normalisation and self.mapping is None:
            self.mapping = self._label_mapping(phase, subjects)
        if phase == "training" and self.config.training.class_weights == "auto":
            self._fit_class_weights(subjects)
        if phase != "evaluation":
            log.info("preprocessing: %s", describe(self._preprocessor))

    def _label_mapping(self, phase: str, subjects: Sequence[Subject]) -> LabelMapping:
        ref, source = Path(self.config.network.histogram_ref_file), self.task.label[0]
        learn = not (ref.exists() and f"label_{source}-from" in read_reference_file(ref))
        if learn and phase != "training":
            raise DataError(f"{ref} has no label mapping for '{source}'; it is learnt by "
                            f"`niftykit train` (needed for {phase})")
        mapping = (LabelMapping.learn([np.array([self.label_code(s)[0] for s in subjects])])
                   if learn else LabelMapping.load(ref, source))
        if mapping.num_classes != self.num_classes:
            raise ConfigError(
                f"{self.config.source}: [classification] num_classes: is {self.num_classes} but "
                f"the training labels hold {mapping.num_classes} codes "
                f"({', '.join(map(str, mapping.codes))}; mapping in {ref})")
        if learn:
            log.info("label_normalisation: codes %s -> 0..%d, saved in %s",
                     ", ".join(map(str, mapping.codes)), mapping.num_classes - 1, ref)
            mapping.save(ref, source)
        return mapping

    def table(self, path: Path, source: str) -> DataTable:
        """A ``csv_data_file``, read once."""
        if path not in self._tables:
            self._tables[path] = read_data_csv(path, source=source)
        return self._tables[path]

    def label_code(self, subject: Subject) -> Tuple[int, str]:
        """A subject's label code as given, and where it came from (for messages).

        Raises:
            DataError: no CSV row, several values, a non-constant label image or a
                value that is not a whole number (naming the file and subject).
        """
        source = self.task.label[0]
        path = Path(subject.paths[source])
        if self.config.inputs[source].csv_data_file:
            values = self.table(path, source).row(subject.id)
            where = f"{path} (subject '{subject.id}')"
            if len(values) != 1:
                raise DataError(f"{where}: {len(values)} values; a classification label is one "
                                "value per subject")
            value = values[0]
        else:
            array = read_image(path, kind="label").array
            where = str(path)
            if array.min() != array.max():
                raise DataError(f"{path}: a classification label image holds one value (a single "
                                f"voxel or a constant image), found {array.min()} to {array.max()}")
            value = float(array.flat[0])
        if value != round(value):
            raise DataError(f"{where}: label value {value:g} is not a whole number")
        return int(value), where

    def split_strata(self, subjects: Sequence[Subject]) -> Dict[str, Any]:
        """Each subject's label code (from its CSV row or label image)."""
        return {subject.id: self.label_code(subject)[0] for subject in subjects}

    def label_index(self, subject: Subject) -> int:
        """A subject's class index 0..num_classes-1."""
        code, where = self.label_code(subject)
        return self.code_index(code, where)

    def code_index(self, code: int, where: str) -> int:
        """The class index of a label code (through the label mapping, if any)."""
        if self.mapping is not None:
            return int(self.mapping.apply(np.array([code]), where=where)[0])
        if not 0 <= code < self.num_classes:
            raise DataError(
                f"label value {code} in {where} is outside 0..{self.num_classes - 1} "
                f"(classification.num_classes={self.num_classes}; set "
                "classification.label_normalisation: true to map arbitrary codes)")
        return code

    def index_code(self, index: int) -> int:
        """The label code of a class index."""
        return int(self.mapping.codes[index]) if self.mapping is not None else int(index)

    def preprocess(self, subject: Subject, with_label: bool) -> Any:
        prepared = self.preprocessor(subject, with_label=False)
        if with_label:
            prepared.volumes["label"] = np.array([self.label_index(subject)], np.int32)
        return prepared

    def make_sampler(self, rng: np.random.Generator, phase: str = "training") -> Sampler:
        """Resized images, random windows, views or multi-scale windows (augmented in
        training), each with its class."""
        check_network_kind(self, "vector", "classification", "resnet, se_resnet")
        window, kind = check_sampling(self, "classification", ("multiview", "multiscale"))
        order = max(self.config.inputs[self.task.image[0]].interp_order, 0)
        n = self.config.training.sample_per_volume
        if kind in ("multiview", "multiscale"):
            sampler = self.context_sampler(window, n, rng, {"image": order})
        else:
            sampler = (ResizeSampler(window, n, {"image": order}, rng) if kind == "resize"
                       else UniformSampler(window, n, rng))
        augment = self.augmenter(rng) if phase == "training" else None
        return with_targets(augmented_sampler(sampler, augment, {"image": order}), ("label",))

    # -- model --------------------------------------------------------------------
    def build_network(self) -> Any:
        check_network_kind(self, "vector", "classification", "resnet, se_resnet")
        window = self.training_window()
        return self.instantiate_network(self.num_classes, 2 if window[2] == 1 else 3)

    def loss(self, outputs: Any, batch: Mapping[str, Any]) -> Any:
        """``training.loss_type`` of the ``(b, K)`` logits and ``(b, 1)`` classes, weighted
        per class by ``training.class_weights``."""
        if self.class_weights is not None:
            from niftykit.loss.classification import cross_entropy

            if self.class_weights == "auto":
                raise DataError("class_weights auto are learnt on the training subjects "
                                "(prepare('training', subjects) first)")
            return cross_entropy(outputs, batch["label"], class_weights=self.class_weights)
        return LOSSES.get(self.loss_name)(outputs, batch["label"])

    # -- inference ----------------------------------------------------------------
    def class_columns(self) -> List[str]:
        """``prob_<code>`` for each class."""
        return [f"{PROB}{self.index_code(i)}" for i in range(self.num_classes)]

    def infer_subject(self, subject: Subject, predict: PredictFn, *, overwrite: bool,
                      progress: Optional[Callable[[int, int], None]] = None) -> Path:
        """Write ``subject_id,label[,prob_<code>...]`` for one subject (one row)."""
        path = output_file(self, subject, ".csv")
        if path.exists() and not overwrite:
            raise DataError(f"{path} exists; pass --overwrite to replace it")
        prepared = self.preprocess(subject, with_label=False)
        probabilities = predict_vector(self, prepared.volumes["image"], predict, softmax, progress)
        if probabilities.shape != (self.num_classes,):
            raise ConfigError(f"{self.config.source}: [network] name: '{self.config.network.name}' "
                              f"gives {probabilities.size} outputs, classification.num_classes is "
                              f"{self.num_classes}")
        row: List[Any] = [subject.id, self.index_code(int(np.argmax(probabilities)))]
        header = ["subject_id", "label"]
        if self.task.output_prob:
            row += [f"{p:.6g}" for p in probabilities]
            header += self.class_columns()
        return write_csv(path, [row], header=header, overwrite=overwrite)

    # -- evaluation ---------------------------------------------------------------
    def metrics(self) -> List[str]:
        """``evaluation.evaluations`` as canonical names (default: accuracy, ROC AUC, the
        confusion matrix and, for two classes, sensitivity and specificity)."""
        binary = ("sensitivity", "specificity") if self.num_classes == 2 else ()
        names = self.config.evaluation.evaluations or (
            "accuracy", "roc_auc", *binary, "confusion_matrix")
        where = f"{self.config.source}: [evaluation] evaluations"
        chosen = []
        for name in names:
            if name.lower() not in METRICS:
                raise ConfigError(f"{where}: '{name}' is not a classification metric (accuracy, "
                                  "roc_auc, sensitivity, specificity, confusion_matrix)")
            if METRICS[name.lower()] in ("sensitivity", "specificity") and not binary:
                raise ConfigError(f"{where}: '{name}' needs two classes (class index 1 the "
                                  f"positive); num_classes is {self.num_classes}")
            if METRICS[name.lower()] not in chosen:
                chosen.append(METRICS[name.lower()])
        return chosen

    def read_prediction(self, path: Path, subject: str) -> Tuple[int, Optional[np.ndarray]]:
        """The predicted code and class probabilities (None without ``prob_`` columns)."""
        try:
            with Path(path).open(newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
            row = next(r for r in rows if r.get("subject_id") == subject)
            code = int(float(row["label"]))
            columns = self.class_columns()
            probs = (np.array([float(row[c]) for c in columns])
                     if all(c in row for c in columns) else None)
        except (OSError, StopIteration, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}: not a classification output for subject '{subject}' "
                            f"(expected subject_id,label[,prob_...] rows; {exc!r})") from None
        return code, probs

    def evaluate(self, inferred: Mapping[str, Path], *, overwrite: bool) -> Tuple[Path, dict]:
        """Accuracy, ROC AUC (one-vs-rest mean for more than two classes, from the
        ``prob_`` columns) and the confusion matrix over the inferred subjects.

        Writes ``<save_csv_dir>/evaluation.csv`` (per subject: reference, predicted,
        correct) and ``confusion_matrix.csv`` (rows reference codes, columns predicted).

        Returns:
            The per-subject CSV and ``{"all": {metric: value}}``.
        """
        self.prepare("evaluation", [])
        metrics = self.metrics()
        folder = Path(self.config.evaluation.save_csv_dir)
        out, matrix_csv = folder / "evaluation.csv", folder / "confusion_matrix.csv"
        for path in (out, matrix_csv):
            if path.exists() and not overwrite:
                raise DataError(f"{path} exists; pass --overwrite to replace it")
        references = {s.id: s for s in self.subjects("evaluation")}
        cases = [(sid, path) for sid, path in sorted(inferred.items()) if sid in references]
        if not cases:
            raise DataError(f"no reference label for any of the {len(inferred)} inferred subjects "
                            f"(label source '{self.task.label[0]}')")
        truth, predicted, scores = [], [], []
        for sid, path in cases:
            code, probs = self.read_prediction(Path(path), sid)
            truth.append(self.label_index(references[sid]))
            predicted.append(self.code_index(code, str(path)))
            scores.append(probs)
        have_probs = all(p is not None for p in scores)
        summary = self._scores(metrics, truth, predicted, scores if have_probs else None)
        point = self._clinical(metrics, truth, scores if have_probs else None, summary,
                               folder / CLINICAL_CSV, overwrite)
        rows = [[sid, self.index_code(t), self.index_code(p), int(t == p)]
                + ([f"{v:.6g}" for v in s] if have_probs else [])
                + ([int(s[1] >= point.threshold)] if point is not None else [])
                for (sid, _), t, p, s in zip(cases, truth, predicted, scores)]
        header = ["subject_id", "reference", "predicted", "correct"] + (
            self.class_columns() if have_probs else []) + (
            ["at_operating_point"] if point is not None else [])
        write_csv(out, rows, header=header, overwrite=True)
        if "confusion_matrix" in metrics:
            self._write_confusion(matrix_csv, truth, predicted)
        return out, {"all": summary}

    def _clinical(self, metrics: Sequence[str], truth: Sequence[int],
                  scores: Optional[Sequence[np.ndarray]], summary: Dict[str, float], path: Path,
                  overwrite: bool) -> Optional[OperatingPoint]:
        """Two classes: the ROC AUC's interval and sensitivity and specificity at
        ``evaluation.operating_point``, added to ``summary``, logged and written to ``path``
        (``metric,value,ci_low,ci_high,detail``). Returns the operating point or None."""
        wanted = [m for m in ("sensitivity", "specificity") if m in metrics]
        with_ci = "roc_auc" in summary and self.num_classes == 2 and scores is not None
        if not (wanted or with_ci):
            return None
        if path.exists() and not overwrite:
            raise DataError(f"{path} exists; pass --overwrite to replace it")
        if scores is None:
            if self.config.evaluation.evaluations:
                raise DataError(f"{' and '.join(wanted)} need class probabilities: infer again "
                                "with classification.output_prob: true")
            log.info("sensitivity, specificity: skipped (the outputs have no probabilities; infer "
                     "with classification.output_prob: true)")
            return None
        ev, column = self.config.evaluation, self.class_columns()[1]
        try:
            report = screening_report(np.array(truth), np.stack(scores)[:, 1],
                                      ev.operating_point if wanted else None,
                                      ev.roc_ci if with_ci else None, self.config.system.seed)
        except ValueError as exc:
            log.warning("sensitivity, specificity and the ROC AUC interval are undefined for "
                        "these subjects: %s", exc)
            return None
        summary.update({k: v for k, v in report.summary().items()
                        if k in wanted or k not in ("sensitivity", "specificity")})
        rows = [row for row in report.rows(column) if row[0] not in
                {"sensitivity", "specificity"} - set(wanted)]
        write_csv(path, rows, header=["metric", "value", "ci_low", "ci_high", "detail"],
                  overwrite=True)
        log.info("%s\n  -> %s", report.text(column), path)
        return report.point

    def _scores(self, metrics: Sequence[str], truth: Sequence[int], predicted: Sequence[int],
                scores: Optional[Sequence[np.ndarray]]) -> Dict[str, float]:
        summary: Dict[str, float] = {}
        if "accuracy" in metrics:
            summary["accuracy"] = classification_accuracy(np.array(truth), np.array(predicted))
        if "roc_auc" in metrics:
            if scores is None:
                if self.config.evaluation.evaluations:
                    raise DataError("roc_auc needs class probabilities: infer again with "
                                    "classification.output_prob: true")
                log.info("roc_auc: skipped (the outputs have no probabilities; infer with "
                         "classification.output_prob: true)")
            else:
                try:
                    summary["roc_auc"] = roc_auc(np.array(truth), np.stack(scores))
                except ValueError as exc:
                    log.warning("roc_auc is undefined for these subjects: %s", exc)
                    summary["roc_auc"] = float("nan")
        return summary

    def _write_confusion(self, path: Path, truth: Sequence[int], predicted: Sequence[int]) -> None:
        matrix = confusion_matrix(np.array(truth), np.array(predicted), self.num_classes)
        codes = [self.index_code(i) for i in range(self.num_classes)]
        rows = [[code, *counts] for code, counts in zip(codes, matrix.tolist())]
        write_csv(path, rows, header=["reference\\predicted", *codes], overwrite=True)
        log.info("confusion matrix (rows reference, columns predicted; codes %s):\n%s -> %s",
                 codes, matrix, path)
