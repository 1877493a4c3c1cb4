"""What the applications with per-image targets share: classification, regression of values.

A per-image target (a class, a regression value) is not a volume: it is not
cut, resampled or augmented. :func:`with_targets` attaches a copy of it to
every window drawn from the subject's images; :func:`predict_vector` turns a
network with one output vector per window into one vector per subject (the
whole image zoomed to the window, the multiview or multiscale window at the
volume's centre, or the mean over a grid of windows).
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
from niftykit.sampler import ResizeSampler, resize_to
from niftykit.sampler.multiview import CentredSampler

__all__ = ["Sampler", "images_only", "resolve_loss", "augmented_sampler", "with_targets",
           "centred_windows", "predict_vector", "output_file", "softmax", "check_sampling",
           "check_network_kind"]

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
    active; ``orders`` gives each volume's interpolation order. A multiview or multiscale
    sampler's support box is augmented, then turned into its window."""
    if augment is None or not augment.active:
        return sampler
    if isinstance(sampler, ResizeSampler):
        def resized(volumes: Mapping[str, np.ndarray]) -> list:
            return [{**augment({k: v for k, v in w.items() if k != "location"},
                               {k: orders[k] for k in w if k != "location"}),
                     "location": w["location"]} for w in sampler(volumes)]
        return resized

    finish = sampler.finish if isinstance(sampler, CentredSampler) else (lambda window: window)

    def augmented(volumes: Mapping[str, np.ndarray]) -> list:
        kept = {k: v for k, v in volumes.items() if k not in sampler.exclude}
        return [finish(augment.window(kept, {k: orders[k] for k in kept}, box))
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


def centred_windows(app: BaseApplication, volume: np.ndarray, flips: bool = False) -> np.ndarray:
    """The ``multiview`` or ``multiscale`` window through the centre voxel of a volume
    ``(x, y, z, c)``, and with ``flips`` through that of each of its 8 mirrored copies.

    Returns:
        ``(1 or 8, wx, wy, wz, channels)`` windows.
    """
    order = max(app.config.inputs[app.task.image[0]].interp_order, 0)
    sampler = app.context_sampler(app.training_window(), 1, None, {"image": order})
    subsets = [s for k in range(4) for s in itertools.combinations((0, 1, 2), k)] if flips else [()]
    copies = [np.flip(volume, axes) if axes else volume for axes in subsets]
    return np.stack([sampler.windows_at({"image": v}, np.array(v.shape[:3])[None] // 2)[0]["image"]
                     for v in copies])


def predict_vector(app: BaseApplication, volume: np.ndarray, predict: PredictFn,
                   transform: Callable[[np.ndarray], np.ndarray],
                   progress: Optional[Callable[[int, int], None]] = None) -> np.ndarray:
    """One output vector for a preprocessed volume ``(x, y, z, c)``.

    With ``window_sampling: resize`` the whole volume zoomed to the training window;
    with ``multiview`` (and ``multiscale`` with ``centre_sampling: volume``) the
    window through the volume's centre voxel; otherwise the mean over a grid of
    windows (``inference.spatial_window_size`` or the training window,
    ``inference.overlap``; multiscale windows with their context) covering it.
    ``transform`` (e.g. a softmax) is applied to each output before averaging, also
    over the flips of ``inference.tta: flip`` (of the volume, for a centred window).

    Returns:
        ``(k,)`` float64.
    """
    config = app.config
    kind = config.network.window_sampling

    def run(windows: np.ndarray) -> np.ndarray:
        outputs = np.asarray(predict(windows), np.float64)
        return transform(outputs.reshape(len(windows), -1))
    if kind == "multiview" or (kind == "multiscale" and config.network.centre_sampling == "volume"):
        outputs = run(centred_windows(app, volume, flips=config.inference.tta == "flip"))
        if progress is not None:
            progress(1, 1)
        return outputs.mean(axis=0)
    if config.inference.tta == "flip":
        run = _flip_average(run)
    if config.network.window_sampling == "resize":
        order = max(config.inputs[app.task.image[0]].interp_order, 0)
        outputs = run(resize_to(volume, app.training_window(), order)[None])
        if progress is not None:
            progress(1, 1)
        return outputs[0]
    sampler = app.grid_sampler(volume, app.inference_window(volume.shape[:3]), (0, 0, 0))
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


def check_sampling(app: BaseApplication, what: str,
                   extra: Sequence[str] = ()) -> Tuple[Tuple[int, int, int], str]:
    """The training window and ``window_sampling`` (``resize``, ``uniform`` or one of
    ``extra``), checked."""
    window, kind = app.training_window(), app.config.network.window_sampling
    key = f"[inputs.{app.task.image[0]}] spatial_window_size"
    if kind not in ("resize", "uniform", *extra):
        others = "".join(f", {name}" for name in extra)
        raise ConfigError(f"{app.config.source}: [network] window_sampling: {what} takes resize "
                          f"(the whole image zoomed to the window), uniform (random windows)"
                          f"{others}, got {kind}")
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
