"""Reading a NIfTI volume and cutting training windows: niftykit vs TorchIO vs nibabel by hand.

One 160×160×128 float32 volume (a smooth phantom plus Gaussian noise, 1 mm voxels)
is written as ``.nii.gz`` to a temporary folder; then, in one worker process,
round-robin over the sides so that drift on the machine hits every side alike:

(a) load the file into memory:
    - niftykit: ``niftykit.io.read_image(path)`` → C-ordered ``(x, y, z, 1)`` float32
      (includes its NaN/Inf check and the one C-order copy);
    - TorchIO: ``torchio.ScalarImage(path).load()`` (a fresh object each time; TorchIO
      reads with SimpleITK when it is installed, as it is here, and keeps a
      ``(1, x, y, z)`` torch tensor);
    - nibabel: ``nibabel.load(path).get_fdata(dtype=numpy.float32)`` (Fortran-ordered).

(b) cut 256 windows of 64³ from the loaded volume, each a copy:
    - niftykit: ``niftykit.sampler.UniformSampler((64, 64, 64), 256, rng)({"image": image.array})``;
    - TorchIO: ``torchio.data.UniformSampler(64)(subject, num_patches=256)`` drawn to a list
      (each patch is a ``torchio.Subject`` with a copied tensor);
    - nibabel by hand: the same 256 windows (same start indices as niftykit's) sliced
      from nibabel's Fortran-ordered array, each made C-contiguous with
      ``numpy.ascontiguousarray``;
    - reference: the same windows sliced by hand from the C-ordered array (what
      niftykit's sampler costs over bare numpy).

Reported: median over the repeats. Ratio = peer / niftykit (above 1: niftykit faster).
torch runs with ``torch.set_num_threads(2)``.

Run alone: ``python benchmarks/bench_window_sampling.py [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np

from _common import fmt_seconds, print_result, report, run_worker, summary, table

NAME = "window_sampling"
TITLE = "NIfTI load and window sampling, 160×160×128 float32 .nii.gz, 256 windows of 64³"

SHAPE = (160, 160, 128)
WINDOW = 64
N_WINDOWS = 256
FULL = dict(load_repeats=9, window_repeats=7)
QUICK = dict(load_repeats=3, window_repeats=2)


def make_volume() -> np.ndarray:
    """A smooth 'body' (ellipsoid with a few blobs) plus noise: compresses like a real scan, unlike pure noise."""
    rng = np.random.default_rng(0)
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, s, dtype=np.float32) for s in SHAPE), indexing="ij")
    vol = 100.0 * ((x / 0.9) ** 2 + (y / 0.7) ** 2 + (z / 0.95) ** 2 < 1.0)
    for cx, cy, cz, r, v in [(0.3, 0.1, 0.0, 0.25, 80.0), (-0.4, -0.2, 0.3, 0.2, -60.0), (0.0, 0.3, -0.4, 0.15, 150.0)]:
        vol = vol + v * (((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) < r * r)
    vol = vol + rng.normal(0.0, 10.0, size=SHAPE)
    return vol.astype(np.float32)


def _round_robin(fns: Dict[str, Callable[[], Any]], repeats: int) -> Dict[str, Dict[str, Any]]:
    """One untimed call of each, then ``repeats`` rounds calling every side once, timing each call."""
    for fn in fns.values():
        fn()
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            out = fn()
            times[name].append(time.perf_counter() - t0)
            del out
    return {k: summary(v) for k, v in times.items()}


def worker(load_repeats: int, window_repeats: int) -> Dict[str, Any]:
    import nibabel as nib
    import torch
    import torchio as tio

    from niftykit.io import read_image
    from niftykit.sampler import UniformSampler

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory(prefix="niftykit-bench-") as tmp:
        path = Path(tmp) / "volume.nii.gz"
        affine = np.diag([1.0, 1.0, 1.0, 1.0])
        nib.save(nib.Nifti1Image(make_volume(), affine), str(path))
        file_mb = path.stat().st_size / 2 ** 20

        load = _round_robin({
            "niftykit": lambda: read_image(path).array,
            "torchio": lambda: tio.ScalarImage(path).load(),
            "nibabel": lambda: nib.load(str(path)).get_fdata(dtype=np.float32),
        }, load_repeats)

        image = read_image(path)
        fortran = nib.load(str(path)).get_fdata(dtype=np.float32)
        tio_image = tio.ScalarImage(path)
        tio_image.load()
        subject = tio.Subject(image=tio_image)
        assert np.array_equal(image.array[..., 0], fortran)
        assert np.array_equal(tio_image.data.numpy()[0], fortran)

        seed = [0]
        window = (WINDOW,) * 3

        def niftykit_windows():
            seed[0] += 1
            return UniformSampler(window, N_WINDOWS, np.random.default_rng(seed[0]))({"image": image.array})

        def starts():  # the same start indices niftykit's sampler draws for this seed
            rng = np.random.default_rng(seed[0])
            return rng.integers(0, np.array(SHAPE) - WINDOW + 1, size=(N_WINDOWS, 3))

        def by_hand(volume):
            return [np.ascontiguousarray(volume[x:x + WINDOW, y:y + WINDOW, z:z + WINDOW])
                    for x, y, z in starts()]

        sampler = tio.data.UniformSampler(WINDOW)
        check = niftykit_windows()
        for got, want in zip(check[:4], by_hand(fortran)[:4]):
            assert np.array_equal(got["image"][..., 0], want)
        del check

        windows = _round_robin({
            "niftykit": niftykit_windows,
            "torchio": lambda: list(sampler(subject, num_patches=N_WINDOWS)),
            "nibabel": lambda: by_hand(fortran),
            "numpy_c": lambda: by_hand(image.array),
        }, window_repeats)

    import nibabel
    return dict(load=load, windows=windows, file_mb=file_mb, nibabel=nibabel.__version__,
                tio_reader="SimpleITK" if _has_sitk() else "nibabel")


def _has_sitk() -> bool:
    try:
        import SimpleITK  # noqa: F401
        return True
    except ImportError:
        return False


def run(quick: bool = False) -> Dict[str, Any]:
    cfg = QUICK if quick else FULL
    print("  running window sampling (all sides, round-robin) ...", file=sys.stderr, flush=True)
    res = run_worker("bench_window_sampling.py", ["--worker"] + [f"--{k.replace('_', '-')}={v}" for k, v in cfg.items()])
    load, win = res["load"], res["windows"]
    nk_load, nk_win = load["niftykit"]["median"], win["niftykit"]["median"]
    labels_load = {
        "niftykit": "niftykit `read_image` (C-order copy + NaN check)",
        "torchio": f"TorchIO `ScalarImage(path).load()` (reads with {res['tio_reader']})",
        "nibabel": "nibabel `load().get_fdata(float32)` (Fortran order)",
    }
    labels_win = {
        "niftykit": "niftykit `UniformSampler` on the C-ordered array",
        "torchio": "TorchIO `UniformSampler(64)` on a `Subject`",
        "nibabel": "by hand from nibabel's Fortran-ordered array",
        "numpy_c": "(reference) by hand from the C-ordered array",
    }
    rows = []
    for k, lab in labels_load.items():
        s = load[k]
        rows.append(["(a) load", lab, fmt_seconds(s["median"]), f"{fmt_seconds(s['min'])}–{fmt_seconds(s['max'])}",
                     "—" if k == "niftykit" else f"{s['median'] / nk_load:.2f}×"])
    for k, lab in labels_win.items():
        s = win[k]
        rows.append([f"(b) {N_WINDOWS} windows", lab, fmt_seconds(s["median"]),
                     f"{fmt_seconds(s['min'])}–{fmt_seconds(s['max'])}",
                     "—" if k == "niftykit" else f"{s['median'] / nk_win:.2f}×"])
    lines = table(["step", "side", "median", "min–max", "this / niftykit"], rows)
    per_window = {k: win[k]["median"] / N_WINDOWS for k in win}
    ratios = [
        f"load: TorchIO / niftykit = {load['torchio']['median'] / nk_load:.2f}×, "
        f"nibabel / niftykit = {load['nibabel']['median'] / nk_load:.2f}×",
        f"windows: TorchIO / niftykit = **{win['torchio']['median'] / nk_win:.2f}×**, "
        f"nibabel-by-hand / niftykit = **{win['nibabel']['median'] / nk_win:.2f}×**",
        "per window: " + ", ".join(f"{k} {fmt_seconds(v)}" for k, v in per_window.items()),
        f"load + windows: niftykit {nk_load + nk_win:.3f} s, TorchIO {load['torchio']['median'] + win['torchio']['median']:.3f} s, "
        f"nibabel by hand {load['nibabel']['median'] + win['nibabel']['median']:.3f} s",
    ]
    setup = (f"file {res['file_mb']:.1f} MiB in a temporary folder (page cache warm after the untimed first read); "
             f"load: median of {cfg['load_repeats']}, windows: median of {cfg['window_repeats']} "
             f"(each repeat draws {N_WINDOWS} new windows); sides interleaved round-robin in one process")
    return dict(name=NAME, title=TITLE, setup=setup, table=lines, ratios=ratios, raw=res)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--worker", action="store_true")
    p.add_argument("--load-repeats", type=int, default=FULL["load_repeats"])
    p.add_argument("--window-repeats", type=int, default=FULL["window_repeats"])
    a = p.parse_args(argv)
    if a.worker:
        report(worker(a.load_repeats, a.window_repeats))
        return 0
    print_result(run(a.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
