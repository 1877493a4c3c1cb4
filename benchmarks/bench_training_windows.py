"""Augmented training windows per second from 8 NIfTI volumes: niftykit vs MONAI vs TorchIO.

Data (written once per run to a temporary folder, shared by every side): 8 subjects, each a
256×256×128 float32 image and a uint8 label map, both ``.nii.gz`` (1 mm voxels). The label has
9 classes: background and 8 ellipsoidal blobs of radii 36, 26, 18, 13, 9, 6, 4 and 3 voxels at
random places (so the smallest classes hold 80–450 voxels of 8.4 million); the image is a mean
per class plus Gaussian noise (σ 20). Every side draws 64³ windows whose centres are balanced
over the 9 classes, with random flips (each axis with probability 0.5) and a random affine
(rotation ±10° about each axis, scaling ×0.9–1.1 per axis; image linear, label nearest),
8 windows per volume visit, 2 workers, batches of 2 windows:

- niftykit: the real training pipeline. A niftykit config is written to the temporary folder
  (``application: segmentation``, ``network.window_sampling: balanced``,
  ``training.random_flipping_axes: [0, 1, 2]``, ``rotation_angle: [-10, 10]``,
  ``scaling_percentage: [-10, 10]``, ``sample_per_volume: 8``, ``system.num_threads: 2``,
  ``network.batch_size: 2``, windows ``[64, 64, 64]``), ``SegmentationApplication(load_config(path))``
  is created, and the batches are taken from the very dataset ``niftykit train`` iterates:
  ``trainer._prepare``, ``trainer._preflight`` (reads every subject once, filling the volume
  cache, untimed), ``trainer._spec``, ``pipeline.plan_queue`` and ``trainer._batches`` (pipeline 0), read with
  ``trainer._Errors.next``. niftykit augments each window as it cuts it (one resampling of the
  window's voxels from the whole volume). A second row runs the same pipeline without the three
  augmentation keys.
- TorchIO: ``SubjectsDataset(subjects, transform=Compose([RandomFlip(axes=(0, 1, 2)),
  RandomAffine(scales=(0.9, 1.1), degrees=10)]))``, ``Queue(max_length=64, samples_per_volume=8,
  sampler=LabelSampler(64, "label", label_probabilities={0: 1, …, 8: 1}), num_workers=2)`` read by
  ``SubjectsLoader(queue, batch_size=2)``, TorchIO's documented use: each volume visit loads the
  subject from disk and transforms the whole volume, then the queue cuts 8 windows from it. A
  second row without the transforms.
- MONAI: ``Compose([LoadImaged, EnsureChannelFirstd, RandCropByLabelClassesd(spatial_size=64,
  num_classes=9, ratios=[1]*9, num_samples=8), RandFlipd(prob=0.5, spatial_axis=a) for a in 0, 1, 2,
  RandAffined(prob=1, rotate_range=π/18, scale_range=0.1, mode=(bilinear, nearest),
  padding_mode="border")])`` (MONAI crops first, then flips and warps each 64³ crop), first over a
  plain ``Dataset`` with ``DataLoader(num_workers=2, shuffle=True, batch_size=1)`` (each item loads
  the volume and computes the class indices), then MONAI's best configuration: ``CacheDataset``
  (cache_rate 1) caching the loaded volumes and their class indices (``ClassesToIndicesd``, passed
  to ``RandCropByLabelClassesd(indices_key=...)``), with ``RandAffined(cache_grid=True,
  spatial_size=64)``, read by ``DataLoader(num_workers=2, shuffle=True, batch_size=1)``. A MONAI
  batch holds the 8 windows of one volume visit (``list_data_collate``); windows are counted,
  whatever the batch.
- reference: plain numpy slicing (``numpy.ascontiguousarray``) of image and label windows at
  uniformly random places in the preloaded C-ordered volumes, one thread, no augmentation.

Each side runs in its own fresh process (so one library's worker processes and thread pools never
run beside another's), the sides one after the other, in rounds that interleave them. Per process:
a warm-up (the volume cache or CacheDataset filled before it; the first batch shown apart), then
timed blocks of 64 windows each; windows/s per block. Reported: the median and min–max over the
blocks of all rounds. Ratio = niftykit windows/s / the peer's (the same as peer time / niftykit
time per window): above 1 means niftykit is faster.
torch: ``torch.set_num_threads(2)`` in each process.

Run alone: ``python benchmarks/bench_training_windows.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import numpy as np

from _common import fmt_seconds, print_result, report, run_worker, summary, table

NAME = "training_windows"
TITLE = "Training windows per second, 8 volumes 256×256×128, 64³ windows, balanced + flip + affine, 2 workers"

SHAPE = (256, 256, 128)
QUICK_SHAPE = (160, 160, 96)
N_SUBJECTS = 8
NUM_CLASSES = 9
RADII = (36, 26, 18, 13, 9, 6, 4, 3)
WINDOW = 64
SAMPLES_PER_VOLUME = 8
BATCH = 2
WORKERS = 2
TORCH_THREADS = 2

FULL = dict(warmup=64, block=64, blocks=4, rounds=2)
QUICK = dict(warmup=64, block=64, blocks=1, rounds=1)

# (worker side, label in the table)
SIDES = [
    ("niftykit", "niftykit training pipeline, augmented"),
    ("monai_cache", "MONAI CacheDataset + cached class indices, augmented"),
    ("monai", "MONAI Dataset (load per visit), augmented"),
    ("torchio", "TorchIO Queue + LabelSampler, augmented"),
    ("niftykit_noaug", "niftykit training pipeline, no augmentation"),
    ("torchio_noaug", "TorchIO Queue + LabelSampler, no augmentation"),
    ("numpy", "(reference) numpy slicing of preloaded volumes, no augmentation"),
]
AUGMENTED = ("niftykit", "monai_cache", "monai", "torchio")


# --------------------------------------------------------------------------- data (parent, numpy + nibabel)

def make_subject(index: int, shape=SHAPE):
    """A float32 image and a uint8 label of 9 classes: 8 blobs of decreasing size, noise."""
    rng = np.random.default_rng(100 + index)
    scale = shape[0] / SHAPE[0]
    x, y, z = np.ogrid[:shape[0], :shape[1], :shape[2]]
    label = np.zeros(shape, np.uint8)
    lo, hi = np.array(shape) // 2 - np.array(shape) * 11 // 32, np.array(shape) // 2 + np.array(shape) * 11 // 32
    hi[2] = shape[2] // 2 + shape[2] * 3 // 16  # centres away from the z ends, where windows can be centred
    lo[2] = shape[2] // 2 - shape[2] * 3 // 16
    for cls, radius in enumerate(RADII, 1):
        centre = [rng.integers(a, b) for a, b in zip(lo, hi)]
        axes = max(radius * scale, 2.0) * rng.uniform(0.8, 1.25, 3)
        inside = ((x - centre[0]) / axes[0]) ** 2 + ((y - centre[1]) / axes[1]) ** 2 + \
                 ((z - centre[2]) / axes[2]) ** 2 < 1.0
        label[inside] = cls
    means = np.array([0, 100, 140, 60, 180, 80, 220, 40, 160], np.float32)
    image = means[label] + rng.normal(0.0, 20.0, shape).astype(np.float32)
    return image.astype(np.float32), label


def write_dataset(folder: Path, quick: bool = False) -> Dict[str, Any]:
    """The 8 subjects as ``s<i>_image.nii.gz`` / ``s<i>_label.nii.gz`` in ``folder/data``."""
    import nibabel as nib

    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    counts = []
    for i in range(N_SUBJECTS):
        image, label = make_subject(i, QUICK_SHAPE if quick else SHAPE)
        counts.append(np.bincount(label.ravel(), minlength=NUM_CLASSES))
        nib.save(nib.Nifti1Image(image, np.eye(4)), str(data / f"s{i}_image.nii.gz"))
        nib.save(nib.Nifti1Image(label, np.eye(4)), str(data / f"s{i}_label.nii.gz"))
    counts = np.array(counts)
    return dict(data=str(data), shape=list(QUICK_SHAPE if quick else SHAPE),
                smallest=[int(c) for c in counts[:, 1:].min(axis=0)],
                mb=sum(p.stat().st_size for p in data.iterdir()) / 2 ** 20)


def subjects(data: str) -> List[Dict[str, str]]:
    return [dict(image=str(Path(data) / f"s{i}_image.nii.gz"), label=str(Path(data) / f"s{i}_label.nii.gz"))
            for i in range(N_SUBJECTS)]


CONFIG = """\
application: segmentation
inputs:
  image:
    path_to_search: {data}
    filename_contains: [_image]
    spatial_window_size: [{w}, {w}, {w}]
  label:
    path_to_search: {data}
    filename_contains: [_label]
    interp_order: 0
    spatial_window_size: [{w}, {w}, {w}]
system:
  model_dir: {model}
  num_threads: {workers}
  seed: 0
network:
  name: unet
  params: {{n_features: [16, 32, 64], norm: batch}}
  batch_size: {batch}
  window_sampling: balanced
training:
  optimiser: adam
  lr: 0.001
  loss_type: Dice
  sample_per_volume: {spv}
{augmentation}segmentation:
  image: [image]
  label: label
  num_classes: {classes}
"""
AUGMENTATION = """\
  random_flipping_axes: [0, 1, 2]
  rotation_angle: [-10, 10]
  scaling_percentage: [-10, 10]
"""


def write_config(folder: Path, data: str, augment: bool, name: str) -> str:
    """A niftykit config for the dataset; returns its path."""
    path = folder / f"{name}.yaml"
    path.write_text(CONFIG.format(data=data, w=WINDOW, model=str(folder / f"model-{name}"), workers=WORKERS,
                                  batch=BATCH, spv=SAMPLES_PER_VOLUME, classes=NUM_CLASSES,
                                  augmentation=AUGMENTATION if augment else ""))
    return str(path)


# --------------------------------------------------------------------------- timing (workers)

def time_stream(next_batch: Callable[[], int], warmup: int, block: int, blocks: int) -> Dict[str, Any]:
    """Draw ``warmup`` windows untimed (the first batch timed apart), then ``blocks`` timed blocks
    of at least ``block`` windows; ``next_batch()`` returns the number of windows it drew."""
    t0 = time.perf_counter()
    got = next_batch()
    first = time.perf_counter() - t0
    while got < warmup:
        got += next_batch()
    rates, seconds = [], []
    for _ in range(blocks):
        n, t0 = 0, time.perf_counter()
        while n < block:
            n += next_batch()
        dt = time.perf_counter() - t0
        rates.append(n / dt)
        seconds.append(dt)
    return dict(rates=rates, seconds=seconds, first=first)


def niftykit_pipeline(config_path: str):
    """The trainer's own dataset, built as ``niftykit.engine.trainer.train`` builds it."""
    from niftykit.application.segmentation import SegmentationApplication
    from niftykit.config import load_config
    from niftykit.engine import trainer
    from niftykit.engine.runtime import import_tensorflow, seed_everything
    from niftykit.sampler.pipeline import plan_queue

    app = SegmentationApplication(load_config(config_path))
    cfg = app.config
    tf = import_tensorflow(cfg.system.cuda_devices)
    seed_everything(cfg.system.seed)
    subject_list, validation = trainer._prepare(app)
    t0 = time.perf_counter()
    trainer._preflight(app, subject_list, validation)  # reads every subject: the volume cache is filled
    preflight = time.perf_counter() - t0
    spec = trainer._spec(app, subject_list[0])
    queue = plan_queue(spec, queue_mb=cfg.system.queue_size_mb, queue_length=cfg.network.queue_length,
                       samples_per_volume=cfg.training.sample_per_volume, batch_size=cfg.network.batch_size)
    errors = trainer._Errors()
    batches = iter(trainer._batches(app, subject_list, "training", spec, cfg.system.seed, errors, queue.capacity)(0))
    info = dict(preflight=preflight, queue=queue.describe(),
                spec={k: [list(s), np.dtype(d).name] for k, (s, d) in spec.items()})
    return app, tf, spec, (lambda: errors.next(batches, tf)), info


def niftykit_worker(config_path: str, warmup: int, block: int, blocks: int) -> Dict[str, Any]:
    _, _, _, next_batch, info = niftykit_pipeline(config_path)

    def draw() -> int:
        batch = next_batch()
        return int(batch["image"].shape[0])

    result = time_stream(draw, warmup, block, blocks)
    result.update(info)
    return result


def _torch_setup():
    import torch

    torch.set_num_threads(TORCH_THREADS)
    torch.manual_seed(0)
    return torch


def torchio_worker(data: str, augment: bool, warmup: int, block: int, blocks: int) -> Dict[str, Any]:
    _torch_setup()
    import torchio as tio

    subject_list = [tio.Subject(image=tio.ScalarImage(s["image"]), label=tio.LabelMap(s["label"]))
                    for s in subjects(data)]
    transform = tio.Compose([tio.RandomFlip(axes=(0, 1, 2), flip_probability=0.5),
                             tio.RandomAffine(scales=(0.9, 1.1), degrees=10)]) if augment else None
    dataset = tio.SubjectsDataset(subject_list, transform=transform)
    sampler = tio.LabelSampler(WINDOW, label_name="label", label_probabilities={c: 1 for c in range(NUM_CLASSES)})
    queue = tio.Queue(dataset, max_length=N_SUBJECTS * SAMPLES_PER_VOLUME, samples_per_volume=SAMPLES_PER_VOLUME,
                      sampler=sampler, num_workers=WORKERS, shuffle_subjects=True, shuffle_patches=True)
    loader = tio.SubjectsLoader(queue, batch_size=BATCH, num_workers=0)

    def endless() -> Iterator[Any]:
        while True:
            yield from loader

    batches = endless()

    def draw() -> int:
        batch = next(batches)
        return int(batch["image"][tio.DATA].shape[0])

    result = time_stream(draw, warmup, block, blocks)
    result.update(queue=f"Queue(max_length={queue.max_length}, samples_per_volume={SAMPLES_PER_VOLUME}, "
                        f"num_workers={WORKERS})")
    return result


def monai_worker(data: str, cached: bool, warmup: int, block: int, blocks: int) -> Dict[str, Any]:
    torch = _torch_setup()
    from monai.data import CacheDataset, DataLoader, Dataset
    from monai.transforms import (ClassesToIndicesd, Compose, EnsureChannelFirstd, LoadImaged,
                                  RandAffined, RandCropByLabelClassesd, RandFlipd)
    from monai.utils import set_determinism

    set_determinism(0)
    keys = ["image", "label"]
    load = [LoadImaged(keys), EnsureChannelFirstd(keys)]
    crop = dict(keys=keys, label_key="label", spatial_size=(WINDOW,) * 3, num_classes=NUM_CLASSES,
                ratios=[1] * NUM_CLASSES, num_samples=SAMPLES_PER_VOLUME)
    affine = dict(keys=keys, prob=1.0, rotate_range=[np.pi / 18] * 3, scale_range=[0.1] * 3,
                  mode=("bilinear", "nearest"), padding_mode="border")
    if cached:
        load.append(ClassesToIndicesd("label", num_classes=NUM_CLASSES))
        crop["indices_key"] = "label_cls_indices"
        affine.update(cache_grid=True, spatial_size=(WINDOW,) * 3)
    random = [RandCropByLabelClassesd(**crop)] + [RandFlipd(keys, prob=0.5, spatial_axis=a) for a in range(3)] + \
        [RandAffined(**affine)]
    transform = Compose(load + random)
    files = subjects(data)
    t0 = time.perf_counter()
    if cached:
        dataset = CacheDataset(files, transform, cache_rate=1.0, num_workers=WORKERS, progress=False)
    else:
        dataset = Dataset(files, transform)
    cache_seconds = time.perf_counter() - t0
    loader = DataLoader(dataset, batch_size=1, shuffle=True, num_workers=WORKERS, persistent_workers=True)

    def endless() -> Iterator[Any]:
        while True:
            yield from loader

    batches = endless()

    def draw() -> int:
        batch = next(batches)
        return int(batch["image"].shape[0])

    result = time_stream(draw, warmup, block, blocks)
    result.update(cache_seconds=cache_seconds, torch_threads=torch.get_num_threads())
    return result


def numpy_worker(data: str, warmup: int, block: int, blocks: int) -> Dict[str, Any]:
    import nibabel as nib

    images = [np.ascontiguousarray(nib.load(s["image"]).get_fdata(dtype=np.float32)) for s in subjects(data)]
    labels = [np.ascontiguousarray(np.asarray(nib.load(s["label"]).dataobj)) for s in subjects(data)]
    rng = np.random.default_rng(0)
    shape = np.array(images[0].shape)

    def draw() -> int:
        for _ in range(BATCH):
            i = int(rng.integers(N_SUBJECTS))
            x, y, z = rng.integers(0, shape - WINDOW + 1)
            box = (slice(x, x + WINDOW), slice(y, y + WINDOW), slice(z, z + WINDOW))
            np.ascontiguousarray(images[i][box]), np.ascontiguousarray(labels[i][box])
        return BATCH

    return time_stream(draw, warmup, block * 4, blocks * 4)


def worker(side: str, data: str, config: str, warmup: int, block: int, blocks: int) -> Dict[str, Any]:
    if side in ("niftykit", "niftykit_noaug"):
        return niftykit_worker(config, warmup, block, blocks)
    if side in ("torchio", "torchio_noaug"):
        return torchio_worker(data, side == "torchio", warmup, block, blocks)
    if side in ("monai", "monai_cache"):
        return monai_worker(data, side == "monai_cache", warmup, block, blocks)
    return numpy_worker(data, warmup, block, blocks)


# --------------------------------------------------------------------------- driver

def run(quick: bool = False) -> Dict[str, Any]:
    cfg = dict(QUICK if quick else FULL)
    rounds = cfg.pop("rounds")
    raw: Dict[str, List[Dict[str, Any]]] = {side: [] for side, _ in SIDES}
    with tempfile.TemporaryDirectory(prefix="niftykit-bench-windows-") as tmp:
        folder = Path(tmp)
        print("  writing the 8 subjects ...", file=sys.stderr, flush=True)
        dataset = write_dataset(folder, quick)
        configs = {"niftykit": write_config(folder, dataset["data"], True, "augmented"),
                   "niftykit_noaug": write_config(folder, dataset["data"], False, "plain")}
        for rnd in range(rounds):
            for side, label in SIDES:
                args = ["--worker", side, "--data", dataset["data"], "--config", configs.get(side, "")]
                args += [f"--{k}={v}" for k, v in cfg.items()]
                print(f"  round {rnd + 1}/{rounds}: {label} ...", file=sys.stderr, flush=True)
                raw[side].append(run_worker("bench_training_windows.py", args, timeout=1200))
    pooled: Dict[str, Dict[str, Any]] = {}
    for side, label in SIDES:
        runs = raw[side]
        rates = [r for run_ in runs for r in run_["rates"]]
        s = summary(rates)
        s.update(label=label, first=statistics.median(r["first"] for r in runs),
                 rounds=[statistics.median(r["rates"]) for r in runs])
        pooled[side] = s
    nk = pooled["niftykit"]["median"]
    rows = []
    for side, label in SIDES:
        s = pooled[side]
        same = pooled["niftykit"] if side in AUGMENTED else pooled["niftykit_noaug"]
        ratio = "—" if side.startswith("niftykit") else f"{same['median'] / s['median']:.2f}×"
        rows.append([label, fmt_seconds(s["first"]), f"{s['median']:.1f}",
                     " / ".join(f"{m:.1f}" for m in s["rounds"]), f"{s['min']:.1f}–{s['max']:.1f}", ratio])
    lines = table(["side", "first batch", "median windows/s", "per-round medians", "min–max windows/s",
                   "niftykit (same augmentation) / this"], rows)
    best = pooled["monai_cache"]["median"]
    tio_rate = pooled["torchio"]["median"]
    nk_plain = pooled["niftykit_noaug"]["median"]
    ratios = [
        f"niftykit / MONAI best (CacheDataset) = {nk:.1f} / {best:.1f} windows/s = **{nk / best:.2f}×** "
        f"(target ≥ 3×: {'met' if nk / best >= 3 else 'not met'})",
        f"niftykit / TorchIO = {nk:.1f} / {tio_rate:.1f} windows/s = **{nk / tio_rate:.2f}×** "
        f"(target ≥ 10×: {'met' if nk / tio_rate >= 10 else 'not met'})",
        f"niftykit / MONAI plain Dataset = {nk / pooled['monai']['median']:.2f}×; without augmentation: niftykit / "
        f"TorchIO = {nk_plain / pooled['torchio_noaug']['median']:.2f}×",
        f"augmentation costs niftykit {nk_plain / nk:.2f}× (no-aug / aug rate), TorchIO "
        f"{pooled['torchio_noaug']['median'] / tio_rate:.2f}×; numpy slicing without augmentation: "
        f"{pooled['numpy']['median']:.0f} windows/s",
    ]
    nk_info = raw["niftykit"][0]
    setup = (f"{N_SUBJECTS} subjects of {'×'.join(map(str, dataset['shape']))} (image float32 + label uint8, "
             f"{dataset['mb']:.0f} MiB of .nii.gz in a temporary folder; smallest class sizes per blob, fewest "
             f"over the subjects: {', '.join(map(str, dataset['smallest']))} voxels); windows {WINDOW}³, "
             f"{SAMPLES_PER_VOLUME} per volume visit, {WORKERS} workers, batch {BATCH} (MONAI: the "
             f"{SAMPLES_PER_VOLUME} windows of one visit). Each side in a fresh process, {rounds} round(s) "
             f"interleaving the sides; per process {cfg['warmup']} warm-up windows (first batch shown apart), then "
             f"{cfg['blocks']} timed blocks of {cfg['block']} windows (numpy: {4 * cfg['blocks']} of "
             f"{4 * cfg['block']}); median and min–max of windows/s over the blocks of all rounds. niftykit: "
             f"{nk_info['queue']}, volume cache filled by the trainer's preflight in {nk_info['preflight']:.1f} s; "
             f"windows {nk_info['spec']}. MONAI CacheDataset filled in "
             f"{statistics.median(r['cache_seconds'] for r in raw['monai_cache']):.1f} s (untimed). "
             f"torch.set_num_threads({TORCH_THREADS})")
    return dict(name=NAME, title=TITLE, setup=setup, table=lines, ratios=ratios, raw=raw)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--worker", choices=[side for side, _ in SIDES])
    p.add_argument("--data", default="")
    p.add_argument("--config", default="")
    for k, v in FULL.items():
        if k != "rounds":
            p.add_argument(f"--{k}", type=int, default=v)
    a = p.parse_args(argv)
    if a.worker:
        report(worker(a.worker, a.data, a.config, a.warmup, a.block, a.blocks))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # the endless tf.data generators / loader workers would hold the interpreter's exit
    print_result(run(a.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
