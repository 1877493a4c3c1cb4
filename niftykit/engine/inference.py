"""The inference driver: restore a checkpoint, run the application over each subject.

Writes ``<save_seg_dir>/inferred.csv`` (``subject_id,path``, as NiftyNet did),
which ``niftykit evaluate`` reads.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, List, Optional

import numpy as np

from niftykit.engine.checkpoint import Checkpointer, check_checkpoint
from niftykit.engine.progress import ProgressBar
from niftykit.engine.runtime import import_tensorflow, precision_policy
from niftykit.errors import DataError, NiftykitError
from niftykit.io import write_csv

__all__ = ["infer", "Predictor", "INFERRED_CSV"]

log = logging.getLogger("niftykit")
INFERRED_CSV = "inferred.csv"


class Predictor:
    """``predict(windows (B, x, y, z, c)) -> outputs (B, x, y, z, k)`` as numpy float32.

    The network is built and its checkpoint restored at the first call, when
    the number of input channels is known; one ``tf.function`` trace serves
    every window size and batch size after that.
    """

    def __init__(self, app: Any, tf: Any) -> None:
        self.app, self.tf = app, tf
        self.iteration: Optional[int] = None
        self._forward: Any = None

    def _build(self, windows: np.ndarray) -> None:
        tf, cfg = self.tf, self.app.config
        with precision_policy(cfg.network.precision):
            model = self.app.build_network()
            model(tf.zeros((1,) + windows.shape[1:], tf.float32))
        self.iteration = Checkpointer(cfg.system.model_dir, model).restore(
            cfg.inference.inference_iter, weights_only=True)
        log.info("network %s restored from the checkpoint of iteration %d",
                 cfg.network.name, self.iteration)
        spec = tf.TensorSpec([None, None, None, None, windows.shape[-1]], tf.float32)

        @tf.function(input_signature=[spec])
        def forward(batch: Any) -> Any:
            return tf.cast(model(batch, training=False), tf.float32)
        self._forward = forward

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        if self._forward is None:
            self._build(windows)
        return self._forward(windows).numpy()


def _check_writable(folder: Path) -> None:
    """Fail before any work if outputs cannot be written to ``folder``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise NiftykitError(f"cannot write to {folder}: {exc.strerror or exc} "
                            "(inference.save_seg_dir)") from None


def infer(app: Any, *, overwrite: bool = False, debug: bool = False) -> List[Path]:
    """Run inference on the inference subjects; returns the files written.

    Raises:
        NiftykitError: no subjects, no checkpoint, an unwritable output folder,
            or outputs that exist without ``overwrite``.
    """
    cfg = app.config
    tf = import_tensorflow(cfg.system.cuda_devices, debug)
    subjects = app.subjects("inference")
    if not subjects:
        raise DataError("no subject to infer (check inference.dataset_to_infer and the split file "
                        f"{cfg.system.dataset_split_file})")
    check_checkpoint(cfg.system.model_dir, cfg.inference.inference_iter)
    out_dir = Path(cfg.inference.save_seg_dir)
    _check_writable(out_dir)
    app.prepare("inference", subjects)
    predict = Predictor(app, tf)
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
