"""Composed spatial augmentation of one 128³ volume: niftykit vs TorchIO vs MONAI.

Issue #3 (I/O layer) sets the target: the composed spatial augmentation of one 128³ volume
(rotation + scaling + elastic, image and label) runs at least 3× faster than TorchIO's
``RandomAffine`` followed by ``RandomElasticDeformation`` on the same volume.

Input: a 128³ float32 image (a smooth phantom plus noise, 1 mm voxels) and its int32 label
map (two ellipsoids, values {0, 1}); every side transforms both, the image linearly and the
label with nearest neighbour, and draws new random parameters on every call:

- niftykit: ``Augmenter(rng=numpy.random.default_rng(seed), rotation=(-10, 10),
  scaling=(-10, 10), elastic=True, proportion_to_deform=1.0, num_ctrl_points=4,
  deformation_sigma=15)`` called as ``aug({"image": (128,128,128,1) float32, "label":
  (128,128,128,1) int32}, {"image": 1, "label": 0})``: one composed map, each volume
  resampled once; its default threads (``min(2, os.cpu_count())``);
- TorchIO: ``Compose([RandomAffine(scales=(0.9, 1.1), degrees=10),
  RandomElasticDeformation(num_control_points=7, max_displacement=TIO_MAX_DISPLACEMENT)])``
  on a ``Subject(image=ScalarImage(tensor=...), label=LabelMap(tensor=...))``: two
  resamplings through SimpleITK (its default threads);
- MONAI: ``Rand3DElasticd(keys=["image", "label"], mode=("bilinear", "nearest"), prob=1,
  rotate_range=(10°,) * 3, scale_range=(0.1,) * 3, sigma_range, magnitude_range,
  padding_mode="border")``: one grid (Gaussian-smoothed full-resolution noise, then the
  affine) and ``grid_sample`` (``torch.set_num_threads(2)``). Two settings: sigma 18 (the
  smoothness of the B-spline fields above) and, for context, sigma 8 (a rougher field, cheaper
  to smooth), each with a magnitude giving about the same displacement.

Comparable magnitudes: rotation (±10° about each axis) and scaling (×0.9–1.1 per axis) are
the same parameterisation on all sides. The elastic parts differ in kind (niftykit: normal
B-spline coefficients, sigma 15 voxels, on 4 intervals per axis; TorchIO: uniform
coefficients in ±max_displacement on the same 4-interval grid, the outer two control points
along x and y held at zero; MONAI: smoothed noise), so the worker measures them (untimed,
elastic part only, on a volume whose channels hold the voxel coordinates): the RMS
displacement per axis over the inner 96³ voxels, and the correlation of the displacement 16
voxels apart along x (how smooth the field is). The parameters were chosen so that the RMS
displacements are close; the measured values are printed with the results.

Timing: one process, the sides interleaved round-robin draw by draw, with a 0.2 s pause before
every timed call so that the previous side's worker threads (torch's OpenMP pool, ITK's pool)
are asleep. Warm-up draws are not timed. Reported: median over the timed draws per side.
Ratio = peer / niftykit (above 1: niftykit faster).

Run alone: ``python benchmarks/bench_augmentation.py [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from typing import Any, Callable, Dict, List

import numpy as np

from _common import fmt_seconds, print_result, report, run_worker, summary, table

NAME = "augmentation"
TITLE = "Composed spatial augmentation (rotation + scaling + elastic) of a 128³ image and label"

TARGET = 3.0  # issue #3: TorchIO / niftykit at least this
TIO_MAX_DISPLACEMENT = 26.0  # mm = voxels here; see the module docstring
MONAI_SETTINGS = {  # name -> (sigma_range, magnitude_range)
    "monai": ((18.0, 18.0), (4500.0, 5100.0)),
    "monai_s8": ((8.0, 8.0), (1200.0, 1360.0)),
}
FULL = dict(size=128, warmup=2, repeats=9, calibration=5, pause=0.2)
QUICK = dict(size=64, warmup=1, repeats=2, calibration=1, pause=0.05)


def make_sample(size: int):
    """``(n, n, n, 1)`` float32 image and int32 label in {0, 1}."""
    rng = np.random.default_rng(0)
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, size, dtype=np.float32),) * 3, indexing="ij")
    body = (x / 0.9) ** 2 + (y / 0.7) ** 2 + (z / 0.95) ** 2 < 1.0
    organ = ((x - 0.3) / 0.3) ** 2 + ((y - 0.1) / 0.25) ** 2 + (z / 0.4) ** 2 < 1.0
    lesion = (x + 0.4) ** 2 + (y + 0.2) ** 2 + (z - 0.3) ** 2 < 0.2 ** 2
    image = 100.0 * body + 80.0 * organ - 60.0 * lesion + rng.normal(0.0, 10.0, size=x.shape)
    label = (organ | lesion).astype(np.int32)
    return image.astype(np.float32)[..., None], label[..., None]


# --------------------------------------------------------------------------- the sides

def niftykit_side(seed: int, elastic_only: bool = False):
    from niftykit.io import Augmenter

    spatial = {} if elastic_only else dict(rotation=(-10, 10), scaling=(-10, 10))
    aug = Augmenter(rng=np.random.default_rng(seed), elastic=True, proportion_to_deform=1.0,
                    num_ctrl_points=4, deformation_sigma=15, **spatial)

    def run(volumes: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        return aug(volumes, {k: (0 if k == "label" else 1) for k in volumes})

    return run


def torchio_side(elastic_only: bool = False):
    import torchio as tio

    elastic = tio.RandomElasticDeformation(num_control_points=7, max_displacement=TIO_MAX_DISPLACEMENT)
    transform = elastic if elastic_only else tio.Compose([tio.RandomAffine(scales=(0.9, 1.1), degrees=10), elastic])

    def run(subject):
        with warnings.catch_warnings():  # max_displacement > half the grid spacing: "folding may occur"
            warnings.simplefilter("ignore", RuntimeWarning)
            return transform(subject)

    return run


def monai_side(name: str, seed: int, keys=("image", "label"), elastic_only: bool = False):
    from monai.transforms import Rand3DElasticd

    sigma, magnitude = MONAI_SETTINGS[name]
    affine = {} if elastic_only else dict(rotate_range=(np.deg2rad(10.0),) * 3, scale_range=(0.1,) * 3)
    transform = Rand3DElasticd(keys=list(keys), mode=tuple("nearest" if k == "label" else "bilinear" for k in keys),
                               prob=1.0, sigma_range=sigma, magnitude_range=magnitude, padding_mode="border",
                               **affine)
    transform.set_random_state(seed)
    return transform


# --------------------------------------------------------------------------- calibration

def _coordinates(size: int) -> np.ndarray:
    """``(n, n, n, 3)`` float32: each voxel's own index along x, y, z."""
    return np.stack(np.meshgrid(*(np.arange(size, dtype=np.float32),) * 3, indexing="ij"), axis=-1)


def _field_stats(warped: np.ndarray, grid: np.ndarray, margin: int, lag: int) -> Dict[str, float]:
    """RMS displacement per axis and the correlation of the displacement ``lag`` voxels apart along x."""
    inner = (slice(margin, -margin),) * 3
    d = (warped - grid)[inner].astype(np.float64)
    a, b = d[:-lag], d[lag:]
    return dict(rms=float(np.sqrt(np.mean(d ** 2))),
                corr=float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b))))


def calibrate(size: int, draws: int) -> Dict[str, Dict[str, float]]:
    """Elastic part only, ``draws`` draws per side, on the coordinate volume (linear interpolation)."""
    import torch
    import torchio as tio

    grid = _coordinates(size)
    channels_first = torch.from_numpy(np.ascontiguousarray(np.moveaxis(grid, -1, 0)))
    margin, lag = size // 8, size // 8
    out: Dict[str, List[Dict[str, float]]] = {k: [] for k in ("niftykit", "torchio", *MONAI_SETTINGS)}
    tio_run = torchio_side(elastic_only=True)
    for seed in range(draws):
        out["niftykit"].append(_field_stats(niftykit_side(100 + seed, True)({"image": grid})["image"],
                                            grid, margin, lag))
        torch.manual_seed(100 + seed)
        warped = tio_run(tio.Subject(image=tio.ScalarImage(tensor=channels_first)))["image"].data.numpy()
        out["torchio"].append(_field_stats(np.moveaxis(warped, 0, -1), grid, margin, lag))
        for name in MONAI_SETTINGS:
            warped = monai_side(name, 100 + seed, keys=("image",), elastic_only=True)({"image": channels_first})
            out[name].append(_field_stats(np.moveaxis(np.asarray(warped["image"]), 0, -1), grid, margin, lag))
    return {k: {s: float(np.mean([v[s] for v in vals])) for s in ("rms", "corr")} for k, vals in out.items()}


# --------------------------------------------------------------------------- timing

def _check(name: str, image: np.ndarray, label: np.ndarray, image_in: np.ndarray, label_in: np.ndarray) -> float:
    """Shapes kept, labels still {0, 1}, image finite; returns the Dice overlap of the label with the input's."""
    assert image.shape == image_in.shape and label.shape == label_in.shape, (name, image.shape, label.shape)
    assert np.all(np.isfinite(image)), name
    assert set(np.unique(label).tolist()) <= {0, 1}, (name, np.unique(label))
    a, b = label.astype(bool), label_in.astype(bool)
    return float(2.0 * np.sum(a & b) / (np.sum(a) + np.sum(b)))


def worker(size: int, warmup: int, repeats: int, calibration: int, pause: float) -> Dict[str, Any]:
    import SimpleITK as sitk
    import torch
    import torchio as tio

    torch.set_num_threads(2)
    torch.manual_seed(0)
    image, label = make_sample(size)
    image_t = torch.from_numpy(np.ascontiguousarray(np.moveaxis(image, -1, 0)))
    label_t = torch.from_numpy(np.ascontiguousarray(np.moveaxis(label, -1, 0)))
    subject = tio.Subject(image=tio.ScalarImage(tensor=image_t), label=tio.LabelMap(tensor=label_t))

    nk_run, tio_run = niftykit_side(0), torchio_side()
    monai_runs = {name: monai_side(name, i) for i, name in enumerate(MONAI_SETTINGS)}
    fns: Dict[str, Callable[[], Any]] = {
        "niftykit": lambda: nk_run({"image": image, "label": label}),
        "torchio": lambda: tio_run(subject),
    }
    for name, transform in monai_runs.items():
        fns[name] = lambda t=transform: t({"image": image_t, "label": label_t})

    # one checked draw of each side (untimed)
    dice = {}
    out = fns["niftykit"]()
    dice["niftykit"] = _check("niftykit", out["image"], out["label"], image, label)
    assert out["image"].dtype == np.float32 and out["label"].dtype == np.int32
    out = fns["torchio"]()
    dice["torchio"] = _check("torchio", out["image"].data.numpy()[0][..., None],
                             out["label"].data.numpy()[0][..., None], image, label)
    for name in monai_runs:
        out = fns[name]()
        dice[name] = _check(name, np.asarray(out["image"])[0][..., None], np.asarray(out["label"])[0][..., None],
                            image, label)
    del out

    for _ in range(max(warmup - 1, 0)):
        for fn in fns.values():
            fn()
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            time.sleep(pause)
            t0 = time.perf_counter()
            result = fn()
            times[name].append(time.perf_counter() - t0)
            del result

    fields = calibrate(size, calibration)
    return dict(times={k: summary(v) for k, v in times.items()}, fields=fields, dice=dice, size=size,
                sitk_threads=int(sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()),
                torch_threads=int(torch.get_num_threads()))


def run(quick: bool = False) -> Dict[str, Any]:
    cfg = QUICK if quick else FULL
    print("  running spatial augmentation (all sides, round-robin) ...", file=sys.stderr, flush=True)
    res = run_worker("bench_augmentation.py", ["--worker"] + [f"--{k}={v}" for k, v in cfg.items()])
    t, f, dice = res["times"], res["fields"], res["dice"]
    nk = t["niftykit"]["median"]
    (s18, m18), (s8, m8) = MONAI_SETTINGS["monai"], MONAI_SETTINGS["monai_s8"]
    labels = {
        "niftykit": "niftykit `Augmenter` (rotation, scaling, elastic σ 15 on 4 intervals; one resampling)",
        "torchio": f"TorchIO `RandomAffine` then `RandomElasticDeformation(7, {TIO_MAX_DISPLACEMENT:g})`",
        "monai": f"MONAI `Rand3DElasticd` σ {s18[0]:g}, magnitude {m18[0]:g}–{m18[1]:g}",
        "monai_s8": f"(context) MONAI `Rand3DElasticd` σ {s8[0]:g}, magnitude {m8[0]:g}–{m8[1]:g}",
    }
    n = res["size"]
    rows = []
    for k, label in labels.items():
        s = t[k]
        rows.append([label, fmt_seconds(s["median"]), f"{fmt_seconds(s['min'])}–{fmt_seconds(s['max'])}",
                     f"{f[k]['rms']:.1f}", f"{f[k]['corr']:.2f}", f"{dice[k]:.2f}",
                     "—" if k == "niftykit" else f"{s['median'] / nk:.2f}×"])
    lines = table(["side", "median", "min–max", "elastic RMS displacement (voxels, per axis)",
                   f"elastic correlation at {n // 8} voxels", "label Dice vs input", "this / niftykit"], rows)
    ratio = t["torchio"]["median"] / nk
    verdict = ("met" if ratio >= TARGET else "missed") if not quick else "not judged on the --quick volume"
    ratios = [
        f"TorchIO / niftykit = {fmt_seconds(t['torchio']['median'])} / {fmt_seconds(nk)} = **{ratio:.2f}×** "
        f"(issue #3 target ≥ {TARGET:g}×: {verdict})",
        f"MONAI σ {s18[0]:g} / niftykit = **{t['monai']['median'] / nk:.2f}×**; "
        f"MONAI σ {s8[0]:g} / niftykit = {t['monai_s8']['median'] / nk:.2f}×",
    ]
    setup = (f"{n}³ float32 image (order 1) + int32 label (order 0), 1 mm voxels; {cfg['warmup']} warm-up and "
             f"{cfg['repeats']} timed draws per side, interleaved round-robin in one process with a "
             f"{cfg['pause']:g} s pause before each timed call; threads: niftykit 2 (default), SimpleITK "
             f"{res['sitk_threads']} (default), torch {res['torch_threads']}. Elastic columns: the elastic part "
             f"alone, mean of {cfg['calibration']} untimed draws, measured on a coordinate volume over the inner "
             f"{n - 2 * (n // 8)}³ voxels (correlation: of the displacement {n // 8} voxels apart along x). "
             f"Label Dice: overlap of one augmented label with the input label (a sanity check that the "
             f"transforms are of similar size)")
    return dict(name=NAME, title=TITLE if not quick else TITLE.replace("128³", f"{n}³"), setup=setup,
                table=lines, ratios=ratios, raw=res)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--worker", action="store_true")
    for k, v in FULL.items():
        p.add_argument(f"--{k}", type=type(v), default=v)
    a = p.parse_args(argv)
    if a.worker:
        report(worker(a.size, a.warmup, a.repeats, a.calibration, a.pause))
        return 0
    print_result(run(a.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
