"""Training throughput of MONAI's residual U-Net and its Keras twin: niftykit's own loop vs PyTorch (issue 6).

The network, on both sides: MONAI's ``UNet(spatial_dims=3, in_channels=1, out_channels=9,
channels=(16, 32, 64), strides=(2, 2), num_res_units=2, norm="batch", act="relu")`` (Kerfoot et
al. 2018 residual units; 290,271 trainable parameters) and niftykit's twin
``niftykit.network.resunet.ResUNet`` with the same arguments (the same layers, parameter count
and PyTorch padding; ``tests/network/test_resunet.py`` checks, where torch is installed, that
it computes MONAI's function given MONAI's weights).

- MONAI (the peer): a plain PyTorch loop, in memory. ``torch.set_num_threads(2)``; Adam (lr
  1e-3); ``monai.losses.DiceCELoss(softmax=True, to_onehot_y=True)``; batches of 2 × 1 × 64³
  (channels-first) cut before the loop at uniformly random places from the same generated
  volumes niftykit reads (loaded with nibabel), 8 batches cycled. A step is ``zero_grad``,
  forward, loss, ``backward``, ``step``, ``loss.item()``. float32, and bf16 with the forward under
  ``torch.autocast("cpu", dtype=torch.bfloat16)`` (loss on ``logits.float()``). TensorFlow, which
  monai would import through ``torch.utils.tensorboard`` because ``.venv-bench`` has it, is kept
  out of the process (as in an environment with MONAI alone).
- niftykit: the real ``niftykit train`` path, its own loop fed by its own pipeline. A config is
  written (``application: segmentation``, ``network.name: resunet`` with ``params: {channels:
  [16, 32, 64], strides: [2, 2], num_res_units: 2, norm: batch, act: relu}``, ``batch_size: 2``,
  ``window_sampling: uniform``, 64³ windows, no augmentation, ``loss_type: DicePlusXEnt``
  (Dice without squares plus cross-entropy: the same loss as ``DiceCELoss``; on the same logits
  and labels the two agree to 5e-7), ``optimiser: adam``, ``lr: 0.001``, ``sample_per_volume: 8``,
  ``system.num_threads: 2``, ``network.precision: float32`` or ``mixed_bfloat16``, ``log_every_n:
  1``, TensorBoard and checkpoints off during the run); the application is made as the CLI makes it (``load_config``, ``check_supported``,
  ``APPLICATIONS``) and ``niftykit.engine.train`` runs it. The data: 4 generated subjects
  (``bench_training_windows.make_subject``: 9 classes, 160×160×96 float32 image + uint8 label,
  ``.nii.gz``) in a temporary folder. Per-iteration time is read from the trainer without
  touching it: a ``logging.Handler`` on the ``niftykit`` logger time-stamps each ``training iter
  N`` progress line (logged after ``float(loss)`` of iteration N, so one iteration = the batch's
  fetch from the pipeline + the ``tf.function`` step + the loop's bookkeeping); the first
  iteration is timed from the "network resunet: ... parameters" line logged just before the loop.
  TensorFlow's default threads; the 2 sampler workers share the 2 cores with the step.

Each side runs in its own fresh process, in rounds that interleave the sides; at the start of
every round a fresh process measures the matmul peak (``tf.matmul`` of two 4096² matrices,
float32 and bfloat16, best of 5 after 2 untimed calls; 2·n³ FLOP; the peak of a dtype is the best
over all rounds). Per process: warm-up iterations (the first shown apart), then timed ones
(10 and 30, in 5 rounds: with 5, 20 and 2 the same code measured 1.06× and then 1.21× in two
runs minutes apart on a quiet machine, so a single short run is not a measurement; both sides'
speed drifts by 10–15 % over minutes on this virtual machine);
reported: the median and min–max over the timed iterations of all rounds, the ratio of each
round's medians (sides run back to back, so a drift affects both alike), voxels/s = 2 × 64³ /
median, GFLOP/s = GFLOP per step / median, its fraction of the matmul peak of the same dtype
(bf16 rows against the bf16 peak), and the process's peak RSS.

FLOPs: 2 × the multiply-accumulates of the convolutions (transposed ones: input voxels × k³ ×
C_in × C_out, as a dense transposed convolution computes them; zero padding included; batch
norm, activations, additions, the loss and Adam ignored), counted three ways that must agree: the
formula of :func:`resunet_forward_macs` from the layer shapes, forward hooks on every
``Conv3d`` / ``ConvTranspose3d`` of MONAI's network (from the shapes they saw) and niftykit's
forward graph (``bench_network_flops.count_flops`` of the traced model). 9.57 GFLOP forward per
2 × 64³. A training step is rated at 3 × the forward (forward, gradient of the input, gradient of
the weights: the same multiply-accumulates each); this over-counts by the input gradient of the
two convolutions that read the network's input, which neither side computes (0.4 %).

Ratios = niftykit voxels/s / MONAI's: float32 against MONAI float32 (issue 6's target ≥ 1.3),
``mixed_bfloat16`` against MONAI's bf16 autocast (target ≥ 1.1; against MONAI float32 also shown).

``--long`` (not part of the default run) trains niftykit's loop for 2000 iterations (``--iterations``)
with the trainer's default TensorBoard (every 20) and checkpoint (every 500) settings, samples the
process's RSS every 100 iterations and reports the drift: the median step of the last 200
iterations against that of iterations 100–300 (target: at most 10 % slower), and the RSS of the
last 200 iterations against iterations 100–300 (target: at most 5 % more). NiftyNet issue #47 saw
steps ten times slower after a few hundred iterations.

Run alone: ``python benchmarks/bench_training_throughput.py [--quick] [--rounds N] [--steps N]``,
``python benchmarks/bench_training_throughput.py --long [--iterations 2000] [--precision float32]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from _common import fmt_seconds, print_result, report, run_worker, summary, table

NAME = "training_throughput"
TITLE = ("Training throughput, MONAI's residual UNet 16/32/64 (290,271 parameters) and its Keras twin, "
         "batch 2 of 64³, 9 classes, CPU")

TORCH_THREADS = 2
N_SUBJECTS = 4
NUM_CLASSES = 9
BATCH = 2
CHANNELS = (16, 32, 64)
STRIDES = (2, 2)
NUM_RES_UNITS = 2
KERNEL = 3
PARAMS = 290_271  # MONAI's count for the configuration
FULL = dict(size=64, shape=(160, 160, 96), warmup=10, steps=30, rounds=5, mm_n=4096, mm_warmup=2, mm_repeats=5)
QUICK = dict(size=32, shape=(96, 96, 64), warmup=2, steps=3, rounds=1, mm_n=1024, mm_warmup=1, mm_repeats=3)
LONG = dict(iterations=2000)
TARGETS = {"float32": 1.3, "mixed_bfloat16": 1.1}
DRIFT_TARGETS = dict(step=0.10, rss=0.05)

# (worker side, precision, label in the table)
SIDES = [
    ("monai", "float32", "MONAI `UNet`, plain PyTorch loop, float32"),
    ("niftykit", "float32", "niftykit `ResUNet`, `niftykit.engine.train` + pipeline, float32"),
    ("niftykit", "mixed_bfloat16", "niftykit `ResUNet`, `niftykit.engine.train` + pipeline, mixed_bfloat16"),
    ("monai", "bfloat16_autocast", "MONAI `UNet`, plain PyTorch loop, autocast bfloat16"),
]
PEAK_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16", "bfloat16_autocast": "bfloat16"}


# --------------------------------------------------------------------------- FLOPs, from the layer shapes

def resunet_forward_macs(size: int, batch: int, in_channels: int = 1, classes: int = NUM_CLASSES,
                         channels: Sequence[int] = CHANNELS, strides: Sequence[int] = STRIDES,
                         num_res_units: int = NUM_RES_UNITS, k: int = KERNEL, up_k: int = KERNEL) -> int:
    """Multiply-accumulates of the convolutions of MONAI's ``UNet`` (= ``ResUNet``), forward, cubic input.

    A convolution: output voxels × k³ × C_in × C_out; a transposed one: input voxels × k³ × C_in ×
    C_out (every input voxel scatters k³ taps to C_out channels). Encoder level i: residual unit
    with ``num_res_units`` convolutions (the first strided), plus the strided k³ residual
    convolution (1³ at stride 1 when the channels change, none if they do not); bottom: the same
    at stride 1; decoder level i: transposed convolution (C_i + C_below -> C_{i-1} or classes),
    then a residual unit of one k³ convolution (identity residual).
    """
    c, levels = list(channels), len(channels) - 1
    macs, n, cin, sizes = 0, size, in_channels, []
    units = max(1, num_res_units)

    def conv(voxels: int, kernel: int, c_in: int, c_out: int) -> int:
        return batch * voxels * kernel ** 3 * c_in * c_out

    for i in range(levels):  # encoder
        sizes.append(n)
        n = -(-n // strides[i])
        macs += conv(n ** 3, k, cin, c[i]) + (units - 1) * conv(n ** 3, k, c[i], c[i])
        if num_res_units and strides[i] > 1:
            macs += conv(n ** 3, k, cin, c[i])  # strided residual convolution
        elif num_res_units and cin != c[i]:
            macs += conv(n ** 3, 1, cin, c[i])  # 1³ residual convolution
        cin = c[i]
    macs += conv(n ** 3, k, c[levels - 1], c[levels]) + (units - 1) * conv(n ** 3, k, c[levels], c[levels])
    if num_res_units and c[levels - 1] != c[levels]:
        macs += conv(n ** 3, 1, c[levels - 1], c[levels])
    below = c[levels]
    for i in reversed(range(levels)):  # decoder
        out = classes if i == 0 else c[i - 1]
        macs += batch * n ** 3 * up_k ** 3 * (c[i] + below) * out  # transposed, at the input's size
        n = sizes[i]
        if num_res_units:
            macs += conv(n ** 3, k, out, out)
        below = out
    return macs


def step_flops(forward_flops: float) -> float:
    """The rule used for a training step: 3 × the forward (see the module docstring)."""
    return 3.0 * forward_flops


# --------------------------------------------------------------------------- data (parent: numpy + nibabel)

def write_dataset(folder: Path, shape: Sequence[int]) -> Dict[str, Any]:
    """``N_SUBJECTS`` generated subjects as ``s<i>_image.nii.gz`` / ``s<i>_label.nii.gz`` in ``folder/data``."""
    import nibabel as nib

    from bench_training_windows import make_subject

    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    for i in range(N_SUBJECTS):
        image, label = make_subject(i, tuple(shape))
        nib.save(nib.Nifti1Image(image, np.eye(4)), str(data / f"s{i}_image.nii.gz"))
        nib.save(nib.Nifti1Image(label, np.eye(4)), str(data / f"s{i}_label.nii.gz"))
    return dict(data=str(data), shape=list(shape))


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
  num_threads: 2
  seed: 0
network:
  name: resunet
  params: {{channels: [{channels}], strides: [{strides}], num_res_units: {units}, norm: batch, act: relu}}
  batch_size: {batch}
  window_sampling: uniform
  precision: {precision}
training:
  optimiser: adam
  lr: 0.001
  loss_type: DicePlusXEnt
  sample_per_volume: 8
  max_iter: {max_iter}
  log_every_n: 1
{extra}segmentation:
  image: [image]
  label: label
  num_classes: {classes}
"""
QUIET = "  tensorboard_every_n: 0\n  save_every_n: 0\n"  # the throughput runs; --long keeps the defaults


def write_config(folder: Path, data: str, size: int, precision: str, max_iter: int, name: str,
                 defaults: bool = False) -> str:
    """A niftykit config for the generated data; returns its path."""
    path = folder / f"{name}.yaml"
    path.write_text(CONFIG.format(
        data=data, w=size, model=str(folder / f"model-{name}"), channels=", ".join(map(str, CHANNELS)),
        strides=", ".join(map(str, STRIDES)), units=NUM_RES_UNITS, batch=BATCH, precision=precision,
        max_iter=max_iter, extra="" if defaults else QUIET, classes=NUM_CLASSES))
    return str(path)


# --------------------------------------------------------------------------- workers

def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2 ** 20


def peak_worker(n: int, warmup: int, repeats: int) -> Dict[str, Any]:
    from bench_network_flops import peak_tf_worker
    return peak_tf_worker(n, warmup, repeats, checks=False)


def _monai_batches(data: str, size: int, count: int, seed: int = 0) -> List[tuple]:
    """``count`` batches of uniformly random windows of the generated volumes, channels-first."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    volumes = [(np.asarray(nib.load(str(Path(data) / f"s{i}_image.nii.gz")).get_fdata(dtype=np.float32)),
                np.asarray(nib.load(str(Path(data) / f"s{i}_label.nii.gz")).dataobj).astype(np.int64))
               for i in range(N_SUBJECTS)]
    batches = []
    for _ in range(count):
        images, labels = [], []
        for _ in range(BATCH):
            image, label = volumes[rng.integers(len(volumes))]
            corner = [rng.integers(0, s - size + 1) for s in image.shape]
            window = tuple(slice(c, c + size) for c in corner)
            images.append(image[window][None])
            labels.append(label[window][None])
        batches.append((np.stack(images), np.stack(labels)))
    return batches


def monai_worker(data: str, size: int, warmup: int, steps: int, precision: str) -> Dict[str, Any]:
    import contextlib

    # monai imports torch.utils.tensorboard, which imports TensorFlow when it is installed (it
    # is, in .venv-bench); a MONAI environment has no TensorFlow: keep it out of this process
    # (tensorboard then uses its stub), so that neither its memory nor its start-up counts here
    sys.modules.setdefault("tensorflow", None)  # type: ignore[arg-type]
    import torch
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet

    torch.set_num_threads(TORCH_THREADS)
    torch.manual_seed(0)
    batches = [(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y)))
               for x, y in _monai_batches(data, size, 8)]
    net = UNet(spatial_dims=3, in_channels=1, out_channels=NUM_CLASSES, channels=CHANNELS, strides=STRIDES,
               num_res_units=NUM_RES_UNITS, norm="batch", act="relu")
    macs = _torch_forward_macs(torch, net, batches[0][0])
    net.train()
    loss_fn = DiceCELoss(softmax=True, to_onehot_y=True)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bfloat16_autocast" \
        else contextlib.nullcontext

    losses: List[float] = []
    times: List[float] = []
    first = 0.0
    cpu0 = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            cpu0 = time.process_time()
        tic = time.perf_counter()
        x, y = batches[i % len(batches)]
        optimiser.zero_grad(set_to_none=True)
        with autocast():
            logits = net(x)
        loss = loss_fn(logits.float(), y)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        toc = time.perf_counter()
        if i == 0:
            first = toc - tic
        if i >= warmup:
            times.append(toc - tic)
    result = summary(times, first=first)
    result.update(
        cpu=(time.process_time() - cpu0) / steps, forward_flops=2 * macs,
        trainable_params=int(sum(p.numel() for p in net.parameters() if p.requires_grad)),
        loss_first=losses[0], loss_last=losses[-1], peak_rss=_peak_mb(),
        threads=f"torch.set_num_threads({torch.get_num_threads()})")
    return result


def _torch_forward_macs(torch: Any, net: Any, x: Any) -> int:
    """MACs of every Conv3d / ConvTranspose3d, from the shapes seen by forward hooks."""
    total = [0]

    def hook(module, inputs, output):
        k = int(np.prod(module.kernel_size))
        cin, cout = module.in_channels // module.groups, module.out_channels
        if isinstance(module, torch.nn.ConvTranspose3d):
            total[0] += int(inputs[0].numel()) * k * cout  # input voxels × C_in × k³ × C_out
        else:
            total[0] += int(output.numel()) * k * cin

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d))]
    net.eval()
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return total[0]


class IterationClock(logging.Handler):
    """Time-stamps the trainer's progress lines (``training iter N, loss=...``), one per iteration
    with ``log_every_n: 1``; samples the RSS every ``rss_every`` iterations."""

    LINE = re.compile(r"training iter (\d+), loss=(\S+),")

    def __init__(self, rss_every: int = 0) -> None:
        super().__init__(logging.INFO)
        self.rss_every = rss_every
        self.start: Optional[float] = None
        self.times: Dict[int, float] = {}
        self.cpu: Dict[int, float] = {}
        self.losses: Dict[int, float] = {}
        self.rss: Dict[int, float] = {}
        self.lines: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        now = time.perf_counter()
        message = record.getMessage()
        match = self.LINE.match(message)
        if match:
            iteration = int(match.group(1))
            self.times[iteration] = now
            self.cpu[iteration] = time.process_time()
            self.losses[iteration] = float(match.group(2))
            if self.rss_every and iteration % self.rss_every == 0:
                self.rss[iteration] = _rss_mb()
            return
        if message.startswith("network ") and "parameters" in message:
            self.start = now
        self.lines.append(message)

    def steps(self) -> Dict[int, float]:
        """Seconds of each iteration: from the previous line (the first: from the start line)."""
        out = {}
        for it, t in sorted(self.times.items()):
            before = self.times.get(it - 1, self.start if it == min(self.times) else None)
            if before is not None:
                out[it] = t - before
        return out


def _niftykit_train(config_path: str, rss_every: int = 0) -> tuple:
    """``niftykit train -c config_path`` in this process (as the CLI makes the application), timed."""
    from niftykit.application import APPLICATIONS
    from niftykit.config import check_supported, load_config
    from niftykit.engine import train

    log = logging.getLogger("niftykit")
    log.setLevel(logging.INFO)
    log.propagate = False
    clock = IterationClock(rss_every)
    warnings = logging.StreamHandler(sys.stderr)
    warnings.setLevel(logging.WARNING)
    log.addHandler(clock)
    log.addHandler(warnings)
    config = load_config(config_path)
    check_supported(config)
    app = APPLICATIONS.get(config.application)(config)
    rss_before = _rss_mb()
    t0 = time.perf_counter()
    train(app, overwrite=True)
    return app, clock, dict(total=time.perf_counter() - t0, rss_before=rss_before)


def _keras_forward_flops(app: Any, size: int, precision: str) -> Dict[str, Any]:
    """Forward FLOPs of the application's network, counted from its traced graph, and its parameters."""
    import tensorflow as tf

    from bench_network_flops import count_flops
    from niftykit.engine.runtime import precision_policy

    with precision_policy(precision):
        model = app.build_network()
    spec = tf.TensorSpec((BATCH, size, size, size, 1), tf.float32)
    forward = tf.function(lambda x: model(x, training=True))
    counted = count_flops(forward.get_concrete_function(spec).graph)
    return dict(forward_flops=counted["flops"], ops=counted["ops"],
                trainable_params=int(sum(np.prod(v.shape) for v in model.trainable_weights)),
                network=type(model).__name__)


def niftykit_worker(config: str, size: int, warmup: int, steps: int, precision: str) -> Dict[str, Any]:
    app, clock, info = _niftykit_train(config)
    per_step = clock.steps()
    iterations = sorted(per_step)
    if len(iterations) != warmup + steps:
        raise RuntimeError(f"expected {warmup + steps} progress lines, got {len(iterations)}: "
                           f"{clock.lines[-5:]}")
    timed = iterations[warmup:]
    result = summary([per_step[i] for i in timed], first=per_step[iterations[0]])
    last_warm = iterations[warmup - 1]
    result.update(cpu=(clock.cpu[iterations[-1]] - clock.cpu[last_warm]) / steps,
                  loss_first=clock.losses[iterations[0]], loss_last=clock.losses[iterations[-1]],
                  peak_rss=_peak_mb(), **_keras_forward_flops(app, size, precision),
                  queue=next((line.split("; ")[-1] for line in clock.lines if line.startswith("training on")), ""),
                  threads="TF default (0 = all cores); sampler workers: system.num_threads 2")
    return result


def long_worker(config: str, iterations: int) -> Dict[str, Any]:
    every = max(1, iterations // 20)
    _, clock, info = _niftykit_train(config, rss_every=every)
    per_step = clock.steps()
    if len(per_step) != iterations:
        raise RuntimeError(f"expected {iterations} progress lines, got {len(per_step)}")
    return dict(steps={str(k): v for k, v in per_step.items()}, rss={str(k): v for k, v in clock.rss.items()},
                losses=[clock.losses[i] for i in sorted(clock.losses)], every=every, peak_rss=_peak_mb(), **info)


# --------------------------------------------------------------------------- driver

def _gflops(flops: float) -> str:
    return f"{flops / 1e9:.2f}"


def run(quick: bool = False, steps: Optional[int] = None, rounds: Optional[int] = None) -> Dict[str, Any]:
    cfg = dict(QUICK if quick else FULL)
    if steps is not None:
        cfg["steps"] = steps
    if rounds is not None:
        cfg["rounds"] = rounds
    size, warmup, nsteps = cfg["size"], cfg["warmup"], cfg["steps"]
    raw: Dict[tuple, List[Dict[str, Any]]] = {(side, prec): [] for side, prec, _ in SIDES}
    peaks: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="niftykit-bench-throughput-") as tmp:
        folder = Path(tmp)
        print(f"  writing {N_SUBJECTS} subjects ...", file=sys.stderr, flush=True)
        dataset = write_dataset(folder, cfg["shape"])
        for rnd in range(cfg["rounds"]):
            print(f"  round {rnd + 1}/{cfg['rounds']}: matmul peak ...", file=sys.stderr, flush=True)
            peaks.append(run_worker("bench_training_throughput.py", [
                "--worker", "peak", f"--mm-n={cfg['mm_n']}", f"--mm-warmup={cfg['mm_warmup']}",
                f"--mm-repeats={cfg['mm_repeats']}"]))
            for side, precision, label in SIDES:
                print(f"  round {rnd + 1}/{cfg['rounds']}: {label} ...", file=sys.stderr, flush=True)
                args = ["--worker", side, "--precision", precision, f"--size={size}", f"--warmup={warmup}",
                        f"--steps={nsteps}"]
                if side == "niftykit":
                    args += ["--config", write_config(folder, dataset["data"], size, precision, warmup + nsteps,
                                                      f"{precision}-{rnd}")]
                else:
                    args += ["--data", dataset["data"]]
                raw[(side, precision)].append(run_worker("bench_training_throughput.py", args, timeout=1800))
    peak = {dtype: max(p[dtype]["best"] for p in peaks) for dtype in ("float32", "bfloat16")}
    formula = 2 * resunet_forward_macs(size, BATCH)
    voxels = BATCH * size ** 3
    pooled = {}
    for side, precision, label in SIDES:
        runs = raw[(side, precision)]
        s = summary([t for r in runs for t in r["times"]])
        s.update(label=label, side=side, precision=precision, first=statistics.median(r["first"] for r in runs),
                 rounds=[r["median"] for r in runs], params=runs[0]["trainable_params"],
                 forward=runs[0]["forward_flops"], rss=max(r["peak_rss"] for r in runs),
                 cpu=statistics.median(r["cpu"] for r in runs))
        s["voxels"] = voxels / s["median"]
        s["gflops"] = step_flops(formula) / s["median"] / 1e9
        s["of_peak"] = s["gflops"] / peak[PEAK_DTYPE[precision]]
        pooled[(side, precision)] = s
    mo32, mobf = pooled[("monai", "float32")], pooled[("monai", "bfloat16_autocast")]
    nk32, nkbf = pooled[("niftykit", "float32")], pooled[("niftykit", "mixed_bfloat16")]
    peer = {("niftykit", "float32"): mo32, ("niftykit", "mixed_bfloat16"): mobf}
    rows = []
    for key, s in pooled.items():
        ratio = f"{s['voxels'] / peer[key]['voxels']:.2f}×" if key in peer else "—"
        rows.append([s["label"], f"{s['params']:,}", fmt_seconds(s["first"]), f"{s['median']:.3f}",
                     " / ".join(f"{m:.3f}" for m in s["rounds"]), f"{s['min']:.3f}–{s['max']:.3f}",
                     f"{s['voxels'] / 1e6:.2f}", f"{s['gflops']:.1f}",
                     f"{s['of_peak']:.1%} of {PEAK_DTYPE[s['precision']]}", f"{s['cpu']:.2f}",
                     f"{s['rss']:.0f}", ratio])
    lines = table(["side", "trainable params", "first iteration", "median s/step", "per-round medians",
                   "min–max s", "M voxels/s", "GFLOP/s", "of matmul peak", "process CPU s/step",
                   "peak RSS MB", "niftykit / MONAI (voxels/s)"], rows)
    r32, rbf = nk32["voxels"] / mo32["voxels"], nkbf["voxels"] / mobf["voxels"]
    met = lambda r, t: "met" if r >= t else "not met"  # noqa: E731
    ratios = [
        f"float32: niftykit / MONAI voxels/s = {nk32['voxels'] / 1e6:.2f} / {mo32['voxels'] / 1e6:.2f} M = "
        f"**{r32:.2f}×** (issue 6 target ≥ {TARGETS['float32']}: {met(r32, TARGETS['float32'])})",
        f"bf16: niftykit mixed_bfloat16 / MONAI autocast bf16 = {nkbf['voxels'] / 1e6:.2f} / "
        f"{mobf['voxels'] / 1e6:.2f} M = **{rbf:.2f}×** (target ≥ {TARGETS['mixed_bfloat16']}: "
        f"{met(rbf, TARGETS['mixed_bfloat16'])}); against MONAI float32: {nkbf['voxels'] / mo32['voxels']:.2f}×",
        f"bf16 speed-up: niftykit {nk32['median'] / nkbf['median']:.2f}×, MONAI {mo32['median'] / mobf['median']:.2f}×",
        "per round, niftykit / MONAI voxels/s (the sides back to back in each round): float32 "
        + " / ".join(f"{m / n:.2f}×" for m, n in zip(mo32["rounds"], nk32["rounds"]))
        + "; bf16 " + " / ".join(f"{m / n:.2f}×" for m, n in zip(mobf["rounds"], nkbf["rounds"])),
        f"FLOPs per 2 × {size}³ forward: formula {_gflops(formula)} GFLOP, MONAI hooks "
        f"{_gflops(mo32['forward'])}, niftykit traced graph {_gflops(nk32['forward'])} (mixed_bfloat16 "
        f"{_gflops(nkbf['forward'])}); a step is rated 3 × forward = {_gflops(step_flops(formula))} GFLOP",
        f"matmul peak (tf.matmul {cfg['mm_n']}², best over {cfg['rounds']} round(s)): float32 "
        f"{peak['float32']:.0f} GFLOP/s, bfloat16 {peak['bfloat16']:.0f} GFLOP/s",
    ]
    if not (formula == mo32["forward"] == nk32["forward"] == nkbf["forward"]):
        ratios.append("**warning: the FLOP counts disagree**")
    if not (nk32["params"] == mo32["params"] == PARAMS or quick):
        ratios.append(f"**warning: parameter counts differ** (niftykit {nk32['params']:,}, MONAI {mo32['params']:,})")
    info = raw[("niftykit", "float32")][0]
    setup = (f"input {BATCH}×{size}³×1, 9 classes; {N_SUBJECTS} generated subjects "
             f"{'×'.join(map(str, dataset['shape']))} (.nii.gz), uniform windows, no augmentation; niftykit: "
             f"`niftykit.engine.train` on a `resunet` config ({info['queue']}), DicePlusXEnt, Adam; MONAI: "
             f"`DiceCELoss(softmax=True, to_onehot_y=True)`, Adam, batches in memory; each side in a fresh process, "
             f"{cfg['rounds']} round(s) with the sides interleaved; per process {warmup} warm-up iterations (the "
             f"first shown apart) then {nsteps} timed; median over all timed iterations of all rounds. GFLOP/s = "
             f"3 × forward FLOPs / median s/step; peak: `tf.matmul` {cfg['mm_n']}² of the row's dtype. Threads: "
             f"niftykit {info['threads']}; MONAI {raw[('monai', 'float32')][0]['threads']}")
    return dict(name=NAME, title=TITLE, setup=setup, table=lines, ratios=ratios,
                raw=dict(peaks=peaks, runs={f"{k[0]}/{k[1]}": v for k, v in raw.items()}))


def run_long(iterations: int, precision: str, quick: bool = False) -> None:
    """``--long``: niftykit's loop for ``iterations``; step-time and RSS drift."""
    cfg = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="niftykit-bench-long-") as tmp:
        folder = Path(tmp)
        print(f"  writing {N_SUBJECTS} subjects ...", file=sys.stderr, flush=True)
        dataset = write_dataset(folder, cfg["shape"])
        config = write_config(folder, dataset["data"], cfg["size"], precision, iterations, "long", defaults=True)
        print(f"  niftykit, {iterations} iterations, {precision} ...", file=sys.stderr, flush=True)
        res = run_worker("bench_training_throughput.py", ["--worker", "long", "--config", config,
                                                          f"--iterations={iterations}"], timeout=48 * 3600)
    steps = {int(k): v for k, v in res["steps"].items()}
    rss = {int(k): v for k, v in res["rss"].items()}
    lo, hi, tail = iterations // 20, 3 * iterations // 20, iterations // 10  # 100–300, last 200 of 2000
    early = [t for i, t in steps.items() if lo < i <= hi]
    late = [t for i, t in steps.items() if i > iterations - tail]
    rss_early = [m for i, m in rss.items() if lo <= i <= hi]
    rss_late = [m for i, m in rss.items() if i >= iterations - tail]
    step_drift = statistics.median(late) / statistics.median(early) - 1
    rss_drift = statistics.median(rss_late) / statistics.median(rss_early) - 1
    blocks = []
    for start in range(0, iterations, iterations // 10):
        block = [t for i, t in steps.items() if start < i <= start + iterations // 10]
        blocks.append([f"{start + 1}–{start + iterations // 10}", f"{statistics.median(block):.3f}",
                       f"{min(block):.3f}–{max(block):.3f}",
                       f"{rss.get(start + iterations // 10, float('nan')):.0f}"])
    print(f"\n## niftykit training loop over {iterations} iterations ({precision}, `resunet`, batch {BATCH} of "
          f"{cfg['size']}³, trainer defaults: TensorBoard every 20, checkpoints every 500)\n")
    print("\n".join(table(["iterations", "median s/step", "min–max s", "RSS MB at the end"], blocks)))
    print()
    print(f"- step time: median of iterations {iterations - tail + 1}–{iterations} = {statistics.median(late):.3f} s "
          f"vs {lo + 1}–{hi} = {statistics.median(early):.3f} s: drift **{step_drift:+.1%}** "
          f"(target ≤ +{DRIFT_TARGETS['step']:.0%}: {'met' if step_drift <= DRIFT_TARGETS['step'] else 'not met'})")
    print(f"- RSS (sampled every {res['every']} iterations): median of the samples at iterations "
          f"{iterations - tail}–{iterations} = {statistics.median(rss_late):.0f} MB vs {lo}–{hi} = "
          f"{statistics.median(rss_early):.0f} MB: drift **{rss_drift:+.1%}** (target ≤ +{DRIFT_TARGETS['rss']:.0%}: "
          f"{'met' if rss_drift <= DRIFT_TARGETS['rss'] else 'not met'}); {res['rss_before']:.0f} MB before "
          f"`train` (TensorFlow not yet imported), peak {res['peak_rss']:.0f} MB")
    print(f"- loss: first {res['losses'][0]:.4f}, last {res['losses'][-1]:.4f}; wall time {res['total']:.0f} s")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--long", action="store_true", help="2000 iterations of niftykit's loop: step-time and RSS drift")
    p.add_argument("--iterations", type=int, default=LONG["iterations"], help="--long: iterations (default 2000)")
    p.add_argument("--worker", choices=["peak", "monai", "niftykit", "long"])
    p.add_argument("--precision", default="float32")
    p.add_argument("--config", default="")
    p.add_argument("--data", default="")
    p.add_argument("--size", type=int, default=FULL["size"])
    p.add_argument("--warmup", type=int, default=FULL["warmup"])
    p.add_argument("--steps", type=int, default=None, help="timed iterations per process")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--mm-n", type=int, default=FULL["mm_n"])
    p.add_argument("--mm-warmup", type=int, default=FULL["mm_warmup"])
    p.add_argument("--mm-repeats", type=int, default=FULL["mm_repeats"])
    a = p.parse_args(argv)
    if a.worker:
        if a.worker == "peak":
            report(peak_worker(a.mm_n, a.mm_warmup, a.mm_repeats))
        elif a.worker == "monai":
            report(monai_worker(a.data, a.size, a.warmup, a.steps or FULL["steps"], a.precision))
        elif a.worker == "niftykit":
            report(niftykit_worker(a.config, a.size, a.warmup, a.steps or FULL["steps"], a.precision))
        else:
            report(long_worker(a.config, a.iterations))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # the trainer's endless tf.data generators would hold the interpreter's exit
    if a.long:
        run_long(a.iterations, a.precision, a.quick)
        return 0
    print_result(run(a.quick, steps=a.steps, rounds=a.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
