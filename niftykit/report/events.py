"""Loss curves from the TensorBoard event files of a training run.

The trainer writes ``loss`` under ``<model_dir>/logs/training`` and
``<model_dir>/logs/validation`` (:mod:`niftykit.engine.summaries`, ``tf.summary.scalar``,
stored as tensors). An event file is a TFRecord file of ``Event`` protocol buffers;
the records are read here and parsed with tensorboard's ``event_pb2`` and
``tensor_util``, so that reading does not import TensorFlow (tensorboard's
``EventAccumulator`` reads files through TensorFlow whenever it is installed, which
costs seconds and TensorFlow's start-up log). Record checksums are not verified; a
truncated last record (a run still writing) is ignored. A resumed run writes a
second event file whose first iterations may repeat the last ones of the first;
the value written last wins.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO, Dict, Iterator, List, Optional, Tuple

__all__ = ["read_scalars", "loss_curves", "read_records"]

#: step -> value, in step order
Curve = List[Tuple[int, float]]


def read_records(handle: BinaryIO) -> Iterator[bytes]:
    """The payloads of a TFRecord stream: ``uint64 length, uint32 crc, data, uint32 crc``."""
    while True:
        head = handle.read(12)
        if len(head) < 12:
            return
        (length,) = struct.unpack("<Q", head[:8])
        data = handle.read(length)
        if len(data) < length or len(handle.read(4)) < 4:
            return
        yield data


def _scalar(value: object) -> Optional[float]:
    """The number of a summary value: a scalar tensor, or a legacy ``simple_value``."""
    from tensorboard.util import tensor_util
    if value.HasField("tensor"):  # type: ignore[attr-defined]
        array = tensor_util.make_ndarray(value.tensor)  # type: ignore[attr-defined]
        return float(array.reshape(-1)[0]) if array.size else None
    if value.HasField("simple_value"):  # type: ignore[attr-defined]
        return float(value.simple_value)  # type: ignore[attr-defined]
    return None


def read_scalars(run_dir: Path, tag: str) -> Curve:
    """The scalar ``tag`` of every event file in ``run_dir``, as ``(step, value)`` pairs.

    Returns an empty list when the folder or the tag does not exist.
    """
    from tensorboard.compat.proto import event_pb2
    found: Dict[int, Tuple[float, float]] = {}
    for path in sorted(Path(run_dir).glob("events.out.tfevents.*")):
        with path.open("rb") as handle:
            for record in read_records(handle):
                event = event_pb2.Event.FromString(record)
                for value in event.summary.value:
                    number = _scalar(value) if value.tag == tag else None
                    if number is None:
                        continue
                    if event.step not in found or event.wall_time >= found[event.step][0]:
                        found[event.step] = (event.wall_time, number)
    return [(step, found[step][1]) for step in sorted(found)]


def loss_curves(model_dir: Path) -> Dict[str, Curve]:
    """``{"training": curve, "validation": curve}`` of a run's ``loss`` (runs without
    points left out)."""
    logs = Path(model_dir) / "logs"
    curves = {run: read_scalars(logs / run, "loss") for run in ("training", "validation")}
    return {run: curve for run, curve in curves.items() if curve}
