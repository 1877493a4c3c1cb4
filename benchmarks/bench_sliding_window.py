"""Sliding-window inference of a CT-sized volume: niftykit vs MONAI, wall time and peak memory.

One 512×512×200 float32 volume (a body ellipsoid with 8 blobs of 8 intensities plus noise, then
standardised), 96³ windows, overlap 0.5 (10 × 10 × 4 = 400 windows), Gaussian blending
(σ = window / 8), 9 classes, batches of 2 windows, the class of highest blended probability per
voxel as the output. The volume is written once as ``.npy`` and each side ``numpy.load``s it.

The network is the same 3-level U-Net on both sides, with the same weights: niftykit's
``UNet3D(num_classes=9, n_features=[16, 32, 64], norm="batch")`` and MONAI's twin assembled from
``BasicUNet``'s blocks (``bench_training_step.build_monai_unet`` with 9 output channels; 340,665
parameters each). The weights are drawn with numpy (He-normal convolutions, random batch-norm
statistics) in niftykit's layout and copied into both (torch: kernels transposed, the decoder's
concatenation order [skip, up] instead of [up, skip], batch-norm ε set to Keras' 1e-3), so the
two label maps can be compared voxel by voxel; inference mode (batch-norm uses the stored
statistics).

- niftykit: the real inference path, ``SegmentationApplication._infer_grid`` (what
  ``niftykit infer`` runs for each subject after preprocessing) with a config giving
  ``inference.spatial_window_size: [96, 96, 96]``, ``overlap: 0.5``, ``aggregation: gaussian``,
  ``border: [0, 0, 0]``, ``network.batch_size: 2``, ``num_classes: 9``: ``GridSampler(volume, (96, 96,
  96), (0, 0, 0), overlap=0.5)``, batches of 2 windows through a predictor built as
  ``niftykit.engine.inference.Predictor`` builds it (``tf.function`` with a
  ``[None, None, None, None, 1]`` input signature, ``model(batch, training=False)`` cast to
  float32, ``.numpy()``), numpy softmax (``task.softmax``), streamed into ``GridAggregator(mode=
  "gaussian", output="labels")`` (only a slab of probabilities one window deep is ever held).
  TensorFlow's default threads.
- MONAI: ``monai.inferers.sliding_window_inference(volume (1, 1, 512, 512, 200), roi_size=(96, 96,
  96), sw_batch_size=2, predictor=softmax(net(x), dim=1), overlap=0.5, mode="gaussian")`` under
  ``torch.inference_mode()``, then ``argmax`` over the classes (MONAI's stock inferer keeps the
  whole ``(1, 9, 512, 512, 200)`` float32 output and a count map). ``torch.set_num_threads(2)``.

Each side runs in its own fresh process, the sides alternating in rounds. In each process the
network is built and run once on one batch (untimed warm-up: graph tracing, oneDNN primitives,
shown apart), then the volume is inferred once, timed from the in-memory volume to the label map.
Peak memory is the process's maximum resident set size (``getrusage(RUSAGE_SELF).ru_maxrss`` at the
end, so it includes the library itself); the resident size just before the inference is shown
too, and the difference is what the inference added. Ratios: MONAI / niftykit (wall time: above 1
means niftykit is faster; memory: niftykit's peak / MONAI's).

Run alone: ``python benchmarks/bench_sliding_window.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from _common import fmt_seconds, print_result, report, run_worker, summary, table

NAME = "sliding_window"
TITLE = "Sliding-window inference, 512×512×200 volume, 96³ windows, overlap 0.5, Gaussian, 9 classes, 3-level U-Net"

SHAPE = (512, 512, 200)
QUICK_SHAPE = (192, 160, 112)
WINDOW = 96
OVERLAP = 0.5
NUM_CLASSES = 9
FEATURES = (16, 32, 64)
BATCH = 2
TORCH_THREADS = 2
FULL = dict(rounds=1)
QUICK = dict(rounds=1)
SIDES = [("monai", "MONAI `sliding_window_inference` + argmax"),
         ("niftykit", "niftykit `GridSampler` + `GridAggregator(labels)`")]


# --------------------------------------------------------------------------- data and weights

def make_volume(shape) -> np.ndarray:
    """A standardised phantom: body ellipsoid, 8 blobs, noise; built slab by slab (little memory)."""
    rng = np.random.default_rng(0)
    nx, ny, nz = shape
    centres = rng.uniform(0.25, 0.75, (8, 3)) * np.array(shape)
    radii = np.array([40, 30, 24, 18, 12, 9, 6, 4], float) * nx / SHAPE[0]
    values = np.array([1.5, -1.0, 2.0, 0.5, -0.5, 2.5, 1.0, -1.5], np.float32)
    volume = np.empty(shape, np.float32)
    y, z = np.ogrid[:ny, :nz]
    for x in range(nx):
        body = ((x - nx / 2) / (0.45 * nx)) ** 2 + ((y - ny / 2) / (0.4 * ny)) ** 2 + ((z - nz / 2) / (0.48 * nz)) ** 2 < 1
        sl = np.where(body, 0.5, -1.0).astype(np.float32)
        for c, r, v in zip(centres, radii, values):
            if abs(x - c[0]) < r:
                sl[(y - c[1]) ** 2 + (z - c[2]) ** 2 < r * r - (x - c[0]) ** 2] = v
        volume[x] = sl + rng.normal(0.0, 0.3, (ny, nz)).astype(np.float32)
    return volume


def keras_weights() -> Dict[str, List[np.ndarray]]:
    """Random weights in niftykit's (Keras) layout, by layer name."""
    rng = np.random.default_rng(1)
    f0, f1, f2 = FEATURES
    out: Dict[str, List[np.ndarray]] = {}

    def conv(name, cin, cout, k=3):
        fan_in = k ** 3 * cin
        out[name] = [(rng.standard_normal((k, k, k, cin, cout)) * np.sqrt(2.0 / fan_in)).astype(np.float32),
                     (0.05 * rng.standard_normal(cout)).astype(np.float32)]

    def norm(name, c):
        out[name] = [rng.uniform(0.8, 1.2, c).astype(np.float32), (0.1 * rng.standard_normal(c)).astype(np.float32),
                     (0.1 * rng.standard_normal(c)).astype(np.float32), rng.uniform(0.8, 1.2, c).astype(np.float32)]

    def block(prefix, cin, cout):
        conv(f"{prefix}_conv0", cin, cout)
        norm(f"{prefix}_norm0", cout)
        conv(f"{prefix}_conv1", cout, cout)
        norm(f"{prefix}_norm1", cout)

    block("down0", 1, f0)
    block("down1", f0, f1)
    block("down2", f1, f2)
    for level, (f_in, f_out) in ((1, (f2, f1)), (0, (f1, f0))):
        out[f"up{level}_deconv"] = [
            (rng.standard_normal((2, 2, 2, f_out, f_in)) * np.sqrt(2.0 / (8 * f_in))).astype(np.float32),
            (0.05 * rng.standard_normal(f_out)).astype(np.float32)]
        block(f"up{level}", 2 * f_out, f_out)
    conv("classifier", f0, NUM_CLASSES, k=1)
    return out


def torch_state(weights: Dict[str, List[np.ndarray]]) -> Dict[str, np.ndarray]:
    """The same weights as a state dict of ``build_monai_unet``."""
    prefix = {"down0": "conv_0", "down1": "down_1.convs", "down2": "down_2.convs",
              "up1": "upcat_2.convs", "up0": "upcat_1.convs"}
    state: Dict[str, np.ndarray] = {}
    for name, arrays in weights.items():
        if name == "classifier":
            state["final_conv.weight"] = arrays[0].transpose(4, 3, 0, 1, 2)
            state["final_conv.bias"] = arrays[1]
        elif name.endswith("_deconv"):
            target = {"up1_deconv": "upcat_2", "up0_deconv": "upcat_1"}[name] + ".upsample.deconv"
            state[f"{target}.weight"] = arrays[0].transpose(4, 3, 0, 1, 2)  # (x,y,z,out,in) -> (in,out,x,y,z)
            state[f"{target}.bias"] = arrays[1]
        else:
            block, layer = name.split("_")
            j = layer[-1]
            if layer.startswith("conv"):
                kernel = arrays[0]
                if block.startswith("up") and j == "0":  # niftykit concatenates [up, skip], MONAI [skip, up]
                    n = kernel.shape[3] // 2
                    kernel = np.concatenate([kernel[:, :, :, n:], kernel[:, :, :, :n]], axis=3)
                state[f"{prefix[block]}.conv_{j}.conv.weight"] = kernel.transpose(4, 3, 0, 1, 2)
                state[f"{prefix[block]}.conv_{j}.conv.bias"] = arrays[1]
            else:
                base = f"{prefix[block]}.conv_{j}.adn.N"
                for key, value in zip(("weight", "bias", "running_mean", "running_var"), arrays):
                    state[f"{base}.{key}"] = value
    return {k: np.ascontiguousarray(v) for k, v in state.items()}


CONFIG = """\
application: segmentation
inputs:
  image:
    path_to_search: {folder}
    filename_contains: [_image]
    spatial_window_size: [{w}, {w}, {w}]
  label:
    path_to_search: {folder}
    filename_contains: [_label]
    interp_order: 0
    spatial_window_size: [{w}, {w}, {w}]
system:
  model_dir: {folder}/model
network:
  name: unet
  params: {{n_features: [16, 32, 64], norm: batch}}
  batch_size: {batch}
inference:
  spatial_window_size: [{w}, {w}, {w}]
  border: [0, 0, 0]
  overlap: {overlap}
  aggregation: gaussian
segmentation:
  image: [image]
  label: label
  num_classes: {classes}
"""


# --------------------------------------------------------------------------- workers

def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def niftykit_worker(folder: str) -> Dict[str, Any]:
    from niftykit.application.segmentation import SegmentationApplication
    from niftykit.config import load_config
    from niftykit.engine.runtime import import_tensorflow

    cfg_path = Path(folder) / "niftykit.yaml"
    app = SegmentationApplication(load_config(cfg_path))
    tf = import_tensorflow()
    model = app.build_network()
    model(tf.zeros((1, WINDOW, WINDOW, WINDOW, 1), tf.float32))
    for name, arrays in keras_weights().items():
        model.get_layer(name).set_weights(arrays)
    spec = tf.TensorSpec([None, None, None, None, 1], tf.float32)

    @tf.function(input_signature=[spec])
    def forward(batch):
        return tf.cast(model(batch, training=False), tf.float32)

    network = [0.0]

    def predict(windows: np.ndarray) -> np.ndarray:  # niftykit.engine.inference.Predictor.__call__
        t0 = time.perf_counter()
        out = forward(windows).numpy()
        network[0] += time.perf_counter() - t0
        return out

    t0 = time.perf_counter()
    predict(np.zeros((BATCH, WINDOW, WINDOW, WINDOW, 1), np.float32))
    warmup = time.perf_counter() - t0
    network[0] = 0.0
    volume = np.load(Path(folder) / "volume.npy")[..., np.newaxis]
    rss_before, peak_before = _rss_mb(), _peak_mb()
    t0 = time.perf_counter()
    labels = app._infer_grid(volume, predict, None)
    wall = time.perf_counter() - t0
    peak = _peak_mb()
    np.save(Path(folder) / "labels-niftykit.npy", labels.astype(np.uint8, copy=False))
    return dict(wall=wall, network=network[0], warmup=warmup, rss_before=rss_before, peak_before=peak_before,
                peak=peak, params=int(sum(np.prod(v.shape) for v in model.trainable_weights)), dtype=str(labels.dtype), threads="TF default")


def monai_worker(folder: str) -> Dict[str, Any]:
    import torch
    from monai.inferers import sliding_window_inference

    from bench_training_step import build_monai_unet

    torch.set_num_threads(TORCH_THREADS)
    net = build_monai_unet(out_channels=NUM_CLASSES, features=FEATURES)
    state = {k: torch.from_numpy(v) for k, v in torch_state(keras_weights()).items()}
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.eps = 1e-3  # Keras' BatchNormalization epsilon
    net.eval()
    network = [0.0]

    def predictor(batch):
        t0 = time.perf_counter()
        out = torch.softmax(net(batch), dim=1)
        network[0] += time.perf_counter() - t0
        return out

    with torch.inference_mode():
        t0 = time.perf_counter()
        predictor(torch.zeros((BATCH, 1, WINDOW, WINDOW, WINDOW)))
        warmup = time.perf_counter() - t0
        network[0] = 0.0
        volume = torch.from_numpy(np.load(Path(folder) / "volume.npy"))[None, None]
        rss_before, peak_before = _rss_mb(), _peak_mb()
        t0 = time.perf_counter()
        probabilities = sliding_window_inference(volume, roi_size=(WINDOW,) * 3, sw_batch_size=BATCH,
                                                 predictor=predictor, overlap=OVERLAP, mode="gaussian")
        labels = probabilities.argmax(dim=1)[0]
        wall = time.perf_counter() - t0
        del probabilities
        labels = labels.to(torch.uint8).numpy()
    peak = _peak_mb()
    np.save(Path(folder) / "labels-monai.npy", labels)
    return dict(wall=wall, network=network[0], warmup=warmup, rss_before=rss_before, peak_before=peak_before,
                peak=peak, params=int(sum(p.numel() for p in net.parameters())), dtype="int64 (argmax)",
                threads=f"torch.set_num_threads({torch.get_num_threads()})")


# --------------------------------------------------------------------------- driver

def run(quick: bool = False) -> Dict[str, Any]:
    cfg = QUICK if quick else FULL
    rounds = cfg["rounds"]
    shape = QUICK_SHAPE if quick else SHAPE
    raw: Dict[str, List[Dict[str, Any]]] = {side: [] for side, _ in SIDES}
    agreement: List[float] = []
    with tempfile.TemporaryDirectory(prefix="niftykit-bench-sw-") as tmp:
        folder = Path(tmp)
        print(f"  writing the {'×'.join(map(str, shape))} volume ...", file=sys.stderr, flush=True)
        np.save(folder / "volume.npy", make_volume(shape))
        (folder / "niftykit.yaml").write_text(CONFIG.format(folder=tmp, w=WINDOW, batch=BATCH, overlap=OVERLAP,
                                                            classes=NUM_CLASSES))
        for rnd in range(rounds):
            order = SIDES if rnd % 2 == 0 else SIDES[::-1]
            for side, label in order:
                print(f"  round {rnd + 1}/{rounds}: {label} ...", file=sys.stderr, flush=True)
                raw[side].append(run_worker("bench_sliding_window.py", ["--worker", side, "--folder", tmp],
                                            timeout=3600))
            a, b = np.load(folder / "labels-niftykit.npy"), np.load(folder / "labels-monai.npy")
            agreement.append(float(np.mean(a == b)))
            classes = np.bincount(a.ravel(), minlength=NUM_CLASSES)
    pooled = {}
    for side, label in SIDES:
        runs = raw[side]
        s = summary([r["wall"] for r in runs])
        s.update(label=label, peak=max(r["peak"] for r in runs), rss_before=statistics.median(r["rss_before"] for r in runs),
                 network=statistics.median(r["network"] for r in runs),
                 warmup=statistics.median(r["warmup"] for r in runs), params=runs[0]["params"])
        pooled[side] = s
    nk, mo = pooled["niftykit"], pooled["monai"]
    rows = [[s["label"], f"{s['params']:,}", fmt_seconds(s["warmup"]), f"{s['median']:.1f}",
             f"{s['min']:.1f}–{s['max']:.1f}", f"{s['network']:.1f}", f"{s['median'] - s['network']:.1f}",
             f"{s['peak']:.0f}", f"{s['rss_before']:.0f}", f"{s['peak'] - s['rss_before']:.0f}"]
            for s in pooled.values()]
    lines = table(["side", "trainable params", "warm-up batch", "wall s (median)", "min–max s", "in the network s",
                   "outside it s", "peak RSS MB", "RSS before MB", "added MB"], rows)
    time_ratio = mo["median"] / nk["median"]
    mem_ratio = nk["peak"] / mo["peak"]
    ratios = [
        f"wall time: MONAI / niftykit = {mo['median']:.1f} / {nk['median']:.1f} s = **{time_ratio:.2f}×** "
        f"(target: niftykit ≤ MONAI, i.e. ≥ 1: {'met' if time_ratio >= 1 else 'not met'})",
        f"peak memory: niftykit / MONAI = {nk['peak']:.0f} / {mo['peak']:.0f} MB = **{mem_ratio:.2f}×** "
        f"(target ≤ 0.5: {'met' if mem_ratio <= 0.5 else 'not met'}); memory the inference added: niftykit "
        f"{nk['peak'] - nk['rss_before']:.0f} MB, MONAI {mo['peak'] - mo['rss_before']:.0f} MB",
        f"the two label maps agree on {100 * min(agreement):.4f}% of the voxels (same weights); niftykit's classes "
        f"(voxels): {', '.join(f'{c}' for c in classes)}",
    ]
    n_windows = int(np.prod([len(range(0, max(s - WINDOW, 0) + 1, WINDOW // 2)) + (1 if (s - WINDOW) % (WINDOW // 2) else 0)
                             for s in shape]))
    setup = (f"volume {'×'.join(map(str, shape))} float32 ({np.prod(shape) * 4 / 2 ** 20:.0f} MiB), {n_windows} windows of "
             f"{WINDOW}³, batch {BATCH}; each side in a fresh process, {rounds} round(s), timed once per process after "
             f"a one-batch warm-up; peak RSS = `ru_maxrss` of the process (libraries included), RSS before = resident "
             f"size just before the inference (libraries, network and volume loaded). Threads: niftykit "
             f"{nk and raw['niftykit'][0]['threads']}; MONAI {raw['monai'][0]['threads']}")
    return dict(name=NAME, title=TITLE, setup=setup, table=lines, ratios=ratios,
                raw=dict(runs=raw, agreement=agreement))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--worker", choices=[s for s, _ in SIDES])
    p.add_argument("--folder", default="")
    a = p.parse_args(argv)
    if a.worker:
        report(niftykit_worker(a.folder) if a.worker == "niftykit" else monai_worker(a.folder))
        return 0
    print_result(run(a.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
