"""What the applications with per-image targets share: classification, regression of values.

A per-image target (a class, a regression value) is not a volume: it is not
cut, resampled or augmented. :func:`with_targets` attaches a copy of it to
every window drawn from the subject's images; :func:`predict_vector` turns a
network with one output vector per window into one vector per subject (the
whole image zoomed to the window, or the mean over a grid of windows).
:func:`augmented_sampler` (windows augmented in the resampling that cuts them)
also serves voxel-wise regression.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple

import numpy as np

from niftykit.application.base import BaseApplication, PredictFn
from niftykit.errors import ConfigError, DataError
from niftykit.io import Subject
from niftykit.sampler import GridSampler, ResizeSampler, resize_to

__all__ = ["Sampler", "images_only", "resolve_loss", "augmented_sampler", "with_targets",
           "predict_vector", "output_file", "softmax", "check_sampling", "check_network_kind"]

Sampler = Callable[[Mapping[str, np.ndarray]], list]


def images_only(task: Any) -> Any:
    """A view of an application section with only its ``image`` sources, for
    :func:`~niftykit.application.preparation.build_preprocessor` (targets are read apart)."""
    return SimpleNamespace(image=tuple(task.image), label=(), sampler=(),
                           label_normalisation=False)


def resolve_loss(config: Any, allowed: Sequence[str], default: str, what: str) -> str:
    """``training.loss_type`` for a task, its NiftyNet default ``Dice`` meaning ``default``.

    Raises:
        ConfigError: a registered loss of another task (naming ``training.loss_type``).
    """
    name = config.training.loss_type
    if name == "Dice":
        return default
    if name.lower() in {a.lower() for a in allowed} or ":" in name or "." in name:
        return name
    raise ConfigError(f"{config.source}: [training] loss_type: '{name}' is not a {what} loss "
                      f"(use {', '.join(allowed)}, or package.module:function)")


def augmented_sampler(sampler: Any, augment: Any, orders: Mapping[str, int]) -> Sampler:
    """``sampler``'s windows, augmented (in the resampling that cuts them) when ``augment`` is
    active; ``orders`` gives each volume's interpolation order."""
    if augment is None or not augment.active:
        return sampler
    if isinstance(sampler, ResizeSampler):
        def resized(volumes: Mapping[str, np.ndarray]) -> list:
            return [{**augment({k: v for k, v in w.items() if k != "location"},
                               {k: orders[k] for k in w if k != "location"}),
                     "location": w["location"]} for w in sampler(volumes)]
        return resized

    def augmented(volumes: Mapping[str, np.ndarray]) -> list:
        kept = {k: v for k, v in volumes.items() if k not in sampler.exclude}
        return [augment.window(kept, {k: orders[k] for k in kept}, box)
                for box in sampler.locations(volumes, sampler.samples_per_volume)]
    return augmented


def with_targets(sampler: Sampler, targets: Sequence[str]) -> Sampler:
    """Windows of the subject's volumes, each carrying a copy of its per-image ``targets``
    (arrays such as the class ``(1,)``, which are not volumes and are not sampled)."""
    def draw(volumes: Mapping[str, np.ndarray]) -> list:
        windows = sampler({k: v for k, v in volumes.items() if k not in targets})
        for window in windows:
            window.update({t: np.array(volumes[t]) for t in targets if t in volumes})
        return windows
    return draw


def _flip_average(predict: PredictFn) -> PredictFn:
    """Test-time augmentation for vector outputs: the mean over every flip of the
    spatial axes longer than one voxel (the outputs are not flipped back)."""
    def predict_flipped(batch: np.ndarray) -> np.ndarray:
        axes = [a for a in (1, 2, 3) if batch.shape[a] > 1]
        subsets = [s for k in range(len(axes) + 1) for s in itertools.combinations(axes, k)]
        outputs = [np.asarray(predict(np.ascontiguousarray(np.flip(batch, s) if s else batch)))
                   for s in subsets]
        return np.mean(outputs, axis=0)
    return predict_flipped


def predict_vector(app: BaseApplication, volume: np.ndarray, predict: PredictFn,
                   transform: Callable[[np.ndarray], np.ndarray],
                   progress: Optional[Callable[[int, int], None]] = None) -> np.ndarray:
    """One output vector for a preprocessed volume ``(x, y, z, c)``.

    With ``window_sampling: resize`` the whole volume zoomed to the training window;
    otherwise the mean over a grid of windows (``inference.spatial_window_size`` or
    the training window, ``inference.overlap``) covering it. ``transform`` (e.g. a
    softmax) is applied to each output before averaging, also over the flips of
    ``inference.tta: flip``.

    Returns:
        ``(k,)`` float64.
    """
    config = app.config

    def run(windows: np.ndarray) -> np.ndarray:
        outputs = np.asarray(predict(windows), np.float64)
        return transform(outputs.reshape(len(windows), -1))
    if config.inference.tta == "flip":
        run = _flip_average(run)
    if config.network.window_sampling == "resize":
        order = max(config.inputs[app.task.image[0]].interp_order, 0)
        outputs = run(resize_to(volume, app.training_window(), order)[None])
        if progress is not None:
            progress(1, 1)
        return outputs[0]
    sampler = GridSampler(volume, app.inference_window(volume.shape[:3]), (0, 0, 0),
                          overlap=config.inference.overlap)
    total, done = None, 0
    for windows, _ in sampler.batches(config.network.batch_size):
        summed = run(windows).sum(axis=0)
        total = summed if total is None else total + summed
        done += len(windows)
        if progress is not None:
            progress(done, len(sampler))
    return total / len(sampler)


def output_file(app: BaseApplication, subject: Subject, suffix: str) -> Path:
    """``<save_seg_dir>/<subject id><output_postfix><suffix>``; an id cannot leave the folder."""
    folder = Path(app.config.inference.save_seg_dir)
    name = f"{subject.id}{app.config.inference.output_postfix}{suffix}"
    if Path(name).name != name or name.startswith("."):
        raise DataError(f"subject id '{subject.id}' cannot name a file in {folder}; "
                        "rename the input file (no '/', '\\\\' or leading '.')")
    return folder / name


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax along the last axis."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def check_sampling(app: BaseApplication, what: str) -> Tuple[Tuple[int, int, int], str]:
    """The training window and ``window_sampling`` (``resize`` or ``uniform``), checked."""
    window, kind = app.training_window(), app.config.network.window_sampling
    key = f"[inputs.{app.task.image[0]}] spatial_window_size"
    if kind not in ("resize", "uniform"):
        raise ConfigError(f"{app.config.source}: [network] window_sampling: {what} takes resize "
                          f"(the whole image zoomed to the window) or uniform (random windows), "
                          f"got {kind}")
    if kind == "resize" and not all(size > 0 for size in window):
        raise ConfigError(f"{app.config.source}: {key}: window_sampling: resize needs a full "
                          f"window size, got {list(window)}")
    if all(size > 0 for size in window):
        app.check_window(window, key)
    return window, kind


def check_network_kind(app: BaseApplication, kind: str, what: str, examples: str) -> None:
    """Raise a ConfigError naming ``network.name`` if it does not output ``kind``."""
    found = getattr(app.network_class(), "output_kind", "voxels")
    if found != kind:
        has = "one vector per window" if found == "vector" else "one value per voxel"
        wants = "one vector per window" if kind == "vector" else "a voxel-wise network"
        raise ConfigError(f"{app.config.source}: [network] name: '{app.config.network.name}' "
                          f"outputs {has}; {what} needs {wants} (e.g. {examples})")
