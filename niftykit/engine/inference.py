"""The inference driver: restore a network, run the application over each subject.

The network comes from a checkpoint of the training run (``inference.inference_iter``:
an iteration, -1 for the latest, ``best`` for the lowest validation loss) or,
from :mod:`niftykit.engine.export`, ready-made from an export folder. The
subjects are the config's inference subjects (``inference.dataset_to_infer``,
the split file) or the files and folders given with ``--input``
(:func:`input_subjects`). Writes ``<save_seg_dir>/inferred.csv``
(``subject_id,path``, as NiftyNet did), which ``niftykit evaluate`` reads.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from niftykit.engine.checkpoint import Checkpointer, Iteration, check_checkpoint
from niftykit.engine.progress import ProgressBar
from niftykit.engine.runtime import import_tensorflow, precision_policy
from niftykit.errors import DataError, NiftykitError
from niftykit.io import Subject, find_files, write_csv
from niftykit.io.discovery import IMAGE_SUFFIXES

__all__ = ["infer", "Predictor", "INFERRED_CSV", "build_network", "restore_network",
           "input_subjects"]

log = logging.getLogger("niftykit")
INFERRED_CSV = "inferred.csv"


def build_network(app: Any, tf: Any, shape: Sequence[int]) -> Any:
    """The application's network under ``network.precision``, built on zeros of
    ``shape`` ``(x, y, z, channels)`` (batch of one)."""
    with precision_policy(app.config.network.precision):
        model = app.build_network()
        model(tf.zeros((1,) + tuple(int(s) for s in shape), tf.float32))
    return model


def restore_network(app: Any, tf: Any, shape: Sequence[int],
                    iteration: Iteration) -> Tuple[Any, int]:
    """The network built on ``shape`` ``(x, y, z, channels)`` with the weights of the
    checkpoint ``iteration`` (-1: the latest readable one; ``"best"``).

    Returns:
        The Keras model and the iteration restored.

    Raises:
        NiftykitError: no such checkpoint, or one that does not fit the network.
    """
    model = build_network(app, tf, shape)
    restored = Checkpointer(app.config.system.model_dir, model).restore(iteration,
                                                                         weights_only=True)
    return model, restored


class Predictor:
    """``predict(windows (B, x, y, z, c)) -> outputs (B, x, y, z, k)`` as numpy float32.

    Without ``model``, the network is built and its checkpoint
    (``inference.inference_iter``) restored at the first call, when the number
    of input channels is known. One ``tf.function`` trace serves every window
    size and batch size after that.

    Args:
        app: the application.
        tf: the TensorFlow module.
        model: a ready Keras model (e.g. loaded from an export), or None.
    """

    def __init__(self, app: Any, tf: Any, model: Any = None) -> None:
        self.app, self.tf, self.model = app, tf, model
        self.iteration: Optional[int] = None
        self._forward: Dict[Tuple[int, ...], Any] = {}

    def _build(self, windows: np.ndarray) -> Any:
        """The traced forward pass for windows of this shape (batch size free).

        One trace per window shape: some networks (``fixed_window``) need static
        spatial sizes, and a run uses one or two shapes at most.
        """
        tf, cfg = self.tf, self.app.config
        if self.model is None:
            self.model, self.iteration = restore_network(
                self.app, tf, windows.shape[1:], cfg.inference.inference_iter)
            log.info("network %s restored from the checkpoint of iteration %d",
                     cfg.network.name, self.iteration)
        model = self.model
        spec = tf.TensorSpec([None, *windows.shape[1:]], tf.float32)

        @tf.function(input_signature=[spec])
        def forward(batch: Any) -> Any:
            return tf.cast(model(batch, training=False), tf.float32)
        return forward

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        key = tuple(int(n) for n in windows.shape[1:])
        if key not in self._forward:
            self._forward[key] = self._build(windows)
        return self._forward[key](windows).numpy()


def _check_writable(folder: Path) -> None:
    """Fail before any work if outputs cannot be written to ``folder``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise NiftykitError(f"cannot write to {folder}: {exc.strerror or exc} "
                            "(inference.save_seg_dir)") from None


def _file_id(path: Path, section: Any) -> str:
    """A file's subject id by the discovery rule: the name without its image suffix,
    minus ``filename_removefromid`` (a regex) or else each ``filename_contains`` keyword;
    the bare name when that leaves nothing."""
    lower = path.name.lower()
    suffix = next((s for s in IMAGE_SUFFIXES if lower.endswith(s) and len(lower) > len(s)), None)
    if suffix is None:
        raise DataError(f"--input {path}: not an image file (suffixes: "
                        f"{', '.join(IMAGE_SUFFIXES)})")
    stem = path.name[: -len(suffix)]
    removed = stem
    if section.filename_removefromid:
        removed = re.sub(section.filename_removefromid, "", stem)
    else:
        for keyword in section.filename_contains:
            removed = removed.replace(keyword, "")
    return removed or stem


def input_subjects(app: Any, paths: Sequence[Any]) -> List[Subject]:
    """Subjects from ``--input``: image files (one subject each, for a model with one
    image source) and folders (searched with each image source's ``filename_contains``,
    ``filename_not_contains`` and ``filename_removefromid``, as ``path_to_search`` is).

    Subject ids follow the discovery rule, so outputs are named as in a run from the
    config. ``inference.dataset_to_infer`` and the split file do not apply.

    Raises:
        DataError: a missing path, a file that is not an image, files given for a model
            with several image sources, or two inputs with one subject id.
    """
    sources = app.input_sources("inference")
    files, folders = [], []
    for item in paths:
        path = Path(item).expanduser().absolute()
        if not path.exists():
            raise DataError(f"--input {item}: no such file or folder")
        is_series = path.is_dir() and any(path.glob("*.dcm"))
        (folders if path.is_dir() and not is_series else files).append(path)
    if files and len(sources) > 1:
        raise DataError(f"--input: the model reads {len(sources)} image sources "
                        f"({', '.join(sources)}); give folders holding them (each source is "
                        "found by its filename_contains), not files")
    found: Dict[str, Dict[str, Path]] = {name: {} for name in sources}

    def add(name: str, sid: str, path: Path) -> None:
        if found[name].setdefault(sid, path) != path:
            raise DataError(f"--input: {found[name][sid]} and {path} both give subject id "
                            f"'{sid}'; infer them in separate runs")
    for path in files:
        add(sources[0], _file_id(path, app.config.inputs[sources[0]]), path)
    for name in sources:
        section = app.config.inputs[name]
        for folder in folders:
            for sid, path in find_files([folder], section.filename_contains,
                                        section.filename_not_contains,
                                        section.filename_removefromid, source=name).items():
                add(name, sid, path)
    ids = sorted(set.intersection(*(set(found[name]) for name in sources)))
    missing = sorted(set.union(*(set(found[name]) for name in sources)) - set(ids))
    if missing:
        log.warning("--input: skipping %s: not every image source (%s) was found for them",
                    ", ".join(missing), ", ".join(sources))
    return [Subject(sid, {name: found[name][sid] for name in sources}) for sid in ids]


def infer(app: Any, *, overwrite: bool = False, debug: bool = False, model: Any = None,
          subjects: Optional[Sequence[Subject]] = None) -> List[Path]:
    """Run inference on the inference subjects; returns the files written.

    Args:
        app: the application (its config says where outputs go: ``inference.save_seg_dir``).
        overwrite: replace existing outputs.
        debug: keep TensorFlow's start-up logs.
        model: a ready Keras model (from an export); None restores the checkpoint
            ``inference.inference_iter`` of ``system.model_dir``.
        subjects: the subjects to infer (e.g. :func:`input_subjects`); None takes the
            config's inference subjects.

    Raises:
        NiftykitError: no subjects, no checkpoint, an unwritable output folder,
            or outputs that exist without ``overwrite``.
    """
    cfg = app.config
    tf = import_tensorflow(cfg.system.cuda_devices, debug)
    if subjects is None:
        subjects = app.subjects("inference")
        if not subjects:
            raise DataError("no subject to infer (check inference.dataset_to_infer and the split "
                            f"file {cfg.system.dataset_split_file})")
    elif not subjects:
        raise DataError("no subject to infer in the --input files and folders")
    if model is None:
        check_checkpoint(cfg.system.model_dir, cfg.inference.inference_iter)
    out_dir = Path(cfg.inference.save_seg_dir)
    _check_writable(out_dir)
    from niftykit.engine.stages import attach_stages
    attach_stages(app, tf)
    app.prepare("inference", subjects)
    predict = Predictor(app, tf, model)
    log.info("inference on %d subjects -> %s", len(subjects), out_dir)
    written = []
    for number, subject in enumerate(subjects, 1):
        tic = time.perf_counter()
        bar = ProgressBar(f"[{number}/{len(subjects)}] {subject.id}")
        path = app.infer_subject(subject, predict, overwrite=overwrite, progress=bar)
        written.append((subject.id, os.fspath(path)))
        log.info("[%d/%d] %s -> %s (%.1fs)", number, len(subjects), subject.id, path,
                 time.perf_counter() - tic)
    index = out_dir / INFERRED_CSV
    write_csv(index, written, overwrite=True)
    log.info("outputs listed in %s", index)
    return [Path(p) for _, p in written]
