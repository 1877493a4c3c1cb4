"""The inference driver: restore a checkpoint, run the application over each subject.

Writes ``<save_seg_dir>/inferred.csv`` (``subject_id,path``, as NiftyNet did),
which ``niftykit evaluate`` reads.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, List

from niftykit.engine.checkpoint import Checkpointer
from niftykit.engine.runtime import import_tensorflow, precision_policy
from niftykit.errors import DataError
from niftykit.io import write_csv

__all__ = ["infer", "INFERRED_CSV"]

log = logging.getLogger("niftykit")
INFERRED_CSV = "inferred.csv"


def _predict_fn(model: Any, channels: int, tf: Any) -> Any:
    """numpy (B, x, y, z, c) -> numpy (B, x, y, z, k) float32, traced once for any window size."""
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, None, channels], tf.float32)])
    def forward(windows: Any) -> Any:
        return tf.cast(model(windows, training=False), tf.float32)
    return lambda windows: forward(windows).numpy()


def infer(app: Any, *, overwrite: bool = False, debug: bool = False) -> List[Path]:
    """Run inference on the inference subjects; returns the files written.

    Raises:
        NiftykitError: no subjects, no checkpoint, or outputs that exist without ``overwrite``.
    """
    cfg = app.config
    tf = import_tensorflow(cfg.system.cuda_devices, debug)
    subjects = app.subjects("inference")
    if not subjects:
        raise DataError("no subject to infer (check inference.dataset_to_infer and the split file "
                        f"{cfg.system.dataset_split_file})")
    first = app.read_image(subjects[0])
    channels = first.num_channels
    window = tuple(app.inference_window(first.spatial_shape))
    with precision_policy(cfg.network.precision):
        model = app.build_network()
        model(tf.zeros((1,) + window + (channels,)))
    ckpt = Checkpointer(cfg.system.model_dir, model)
    iteration = ckpt.restore(cfg.inference.inference_iter, weights_only=True)
    log.info("inference on %d subjects with the checkpoint of iteration %d", len(subjects), iteration)
    predict = _predict_fn(model, channels, tf)
    written = []
    for number, subject in enumerate(subjects, 1):
        tic = time.perf_counter()
        path = app.infer_subject(subject, predict, overwrite=overwrite)
        written.append((subject.id, str(path)))
        log.info("[%d/%d] %s -> %s (%.1fs)", number, len(subjects), subject.id, path,
                 time.perf_counter() - tic)
    index = Path(cfg.inference.save_seg_dir) / INFERRED_CSV
    write_csv(index, written, overwrite=True)
    log.info("outputs listed in %s", index)
    return [Path(p) for _, p in written]

