"""Training step of a 3-level 3-D U-Net on CPU: niftykit (TensorFlow/Keras) vs MONAI (torch).

niftykit side: ``niftykit.network.unet.UNet3D(num_classes=2, n_features=[16, 32, 64],
norm="batch")``, channels-last ``(2, 64, 64, 64, 1)``, trained with a ``tf.function``
step (GradientTape, Adam, ``niftykit.loss.segmentation.dice``), TensorFlow's default
intra/inter-op thread pools. Also run under ``keras.config.set_dtype_policy("mixed_bfloat16")``
(the model is built after the policy is set; the policy is reset to float32 after).

Peer side: MONAI has no stock 3-level plain U-Net (``BasicUNet`` always has four
down-samplings; ``UNet`` down-samples with strided convolutions and has one
convolution per level), so the peer is assembled from ``BasicUNet``'s own blocks
(``monai.networks.nets.basic_unet.TwoConv``, ``Down``, ``UpCat``) exactly as
``BasicUNet.forward`` wires them, cut to three levels: 2 × (conv 3³ + BatchNorm +
ReLU) per level and path, 2× max-pooling, 2× transposed-convolution up-sampling
that halves the channels, concatenation with the skip, a 1³ classifier. Same
padding everywhere, biases on every convolution (as niftykit). Loss
``monai.losses.DiceLoss(softmax=True, to_onehot_y=True, squared_pred=True)``
(``squared_pred`` makes it the same squared-denominator Dice as niftykit's), Adam,
channels-first ``(2, 1, 64, 64, 64)``, ``torch.set_num_threads(2)``. A second
MONAI row runs the same step under ``torch.autocast("cpu", dtype=torch.bfloat16)``
so that the bf16 rows can also be compared like for like.

Both sides get the same random input and labels (``numpy.random.default_rng(0)``).
Each side runs in its own fresh process (so one library's thread pools never run
beside the other's), one after the other, in 2 rounds that interleave the sides.
Reported: the first step (graph tracing / allocation), then the median over all
timed steps of both rounds (per process: 5 warm-up steps, then 8 timed). Ratio =
peer / niftykit: above 1 means niftykit is faster.

Run alone: ``python benchmarks/bench_training_step.py [--quick]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any, Dict, List

import numpy as np

from _common import fmt_seconds, print_result, report, run_worker, summary, table, time_calls

NAME = "training_step"
TITLE = "Training step, 3-D U-Net 16/32/64, batch 2, CPU"

FULL = dict(size=64, batch=2, warmup=5, steps=8, rounds=2)
QUICK = dict(size=32, batch=2, warmup=2, steps=3, rounds=1)
TORCH_THREADS = 2

# (worker side, precision, label in the table)
SIDES = [
    ("monai", "float32", "MONAI (torch), float32"),
    ("niftykit", "float32", "niftykit (TF/Keras), float32"),
    ("niftykit", "mixed_bfloat16", "niftykit (TF/Keras), mixed_bfloat16"),
    ("monai", "bfloat16_autocast", "MONAI (torch), autocast bfloat16"),
]


def make_data(size: int, batch: int):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, size, size, size, 1), dtype=np.float32)
    y = rng.integers(0, 2, size=(batch, size, size, size, 1), dtype=np.int32)
    return x, y


# --------------------------------------------------------------------------- niftykit side

def niftykit_worker(size: int, batch: int, warmup: int, steps: int, precision: str) -> Dict[str, Any]:
    import keras
    import tensorflow as tf

    from niftykit.loss.segmentation import dice
    from niftykit.network.unet import UNet3D

    keras.config.set_dtype_policy(precision)  # before the model is built
    try:
        keras.utils.set_random_seed(0)
        x_np, y_np = make_data(size, batch)
        x, y = tf.constant(x_np), tf.constant(y_np)
        model = UNet3D(num_classes=2, n_features=[16, 32, 64], norm="batch")
        model(x[:1], training=False)  # create the variables
        optimiser = keras.optimizers.Adam(learning_rate=1e-3)
        optimiser.build(model.trainable_variables)

        @tf.function
        def train_step(images, labels):
            with tf.GradientTape() as tape:
                logits = model(images, training=True)
                loss = dice(logits, labels)
            grads = tape.gradient(loss, model.trainable_variables)
            optimiser.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        losses: List[float] = []
        result = time_calls(lambda: losses.append(float(train_step(x, y))), warmup, steps)
        result.update(
            trainable_params=int(sum(np.prod(v.shape) for v in model.trainable_weights)),
            non_trainable=int(sum(np.prod(v.shape) for v in model.non_trainable_weights)),
            loss_first=losses[0], loss_last=losses[-1],
            threads=f"TF default (intra {tf.config.threading.get_intra_op_parallelism_threads()}, "
                    f"inter {tf.config.threading.get_inter_op_parallelism_threads()}; 0 = all cores)",
        )
        return result
    finally:
        keras.config.set_dtype_policy("float32")


# --------------------------------------------------------------------------- MONAI side

def build_monai_unet(in_channels: int = 1, out_channels: int = 2, features=(16, 32, 64)):
    """BasicUNet's blocks wired as BasicUNet.forward does, with three levels instead of five."""
    import torch
    from monai.networks.layers.factories import Conv
    from monai.networks.nets.basic_unet import Down, TwoConv, UpCat

    act, norm, bias = "relu", "batch", True

    class BasicUNet3Level(torch.nn.Module):
        def __init__(self):
            super().__init__()
            f0, f1, f2 = features
            self.conv_0 = TwoConv(3, in_channels, f0, act, norm, bias)
            self.down_1 = Down(3, f0, f1, act, norm, bias)
            self.down_2 = Down(3, f1, f2, act, norm, bias)
            self.upcat_2 = UpCat(3, f2, f1, f1, act, norm, bias, upsample="deconv")  # 64 -> 32, cat 32, -> 32
            self.upcat_1 = UpCat(3, f1, f0, f0, act, norm, bias, upsample="deconv")  # 32 -> 16, cat 16, -> 16
            self.final_conv = Conv["conv", 3](f0, out_channels, kernel_size=1)

        def forward(self, x):
            x0 = self.conv_0(x)
            x1 = self.down_1(x0)
            x2 = self.down_2(x1)
            u2 = self.upcat_2(x2, x1)
            u1 = self.upcat_1(u2, x0)
            return self.final_conv(u1)

    return BasicUNet3Level()


def monai_worker(size: int, batch: int, warmup: int, steps: int, precision: str) -> Dict[str, Any]:
    import contextlib

    import torch
    from monai.losses import DiceLoss

    torch.set_num_threads(TORCH_THREADS)
    torch.manual_seed(0)
    x_np, y_np = make_data(size, batch)
    x = torch.from_numpy(np.ascontiguousarray(x_np.transpose(0, 4, 1, 2, 3)))
    y = torch.from_numpy(np.ascontiguousarray(y_np.transpose(0, 4, 1, 2, 3))).long()
    net = build_monai_unet()
    net.train()
    loss_fn = DiceLoss(softmax=True, to_onehot_y=True, squared_pred=True)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bfloat16_autocast" \
        else contextlib.nullcontext

    losses: List[float] = []

    def step():
        optimiser.zero_grad(set_to_none=True)
        with autocast():
            logits = net(x)
        loss = loss_fn(logits.float(), y)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())

    result = time_calls(step, warmup, steps)
    result.update(
        trainable_params=int(sum(p.numel() for p in net.parameters() if p.requires_grad)),
        non_trainable=int(sum(b.numel() for n, b in net.named_buffers() if not n.endswith("num_batches_tracked"))),
        loss_first=losses[0], loss_last=losses[-1],
        threads=f"torch.set_num_threads({torch.get_num_threads()})",
    )
    return result


# --------------------------------------------------------------------------- driver

def run(quick: bool = False) -> Dict[str, Any]:
    cfg = dict(QUICK if quick else FULL)
    rounds = cfg.pop("rounds")
    raw: Dict[tuple, List[Dict[str, Any]]] = {(side, prec): [] for side, prec, _ in SIDES}
    for rnd in range(rounds):  # rounds interleave the sides, so drift on the machine hits all of them
        for side, precision, label in SIDES:
            args = ["--worker", side, "--precision", precision] + [f"--{k}={v}" for k, v in cfg.items()]
            print(f"  round {rnd + 1}/{rounds}: {label} ...", file=sys.stderr, flush=True)
            raw[(side, precision)].append(run_worker("bench_training_step.py", args))
    pooled = {}
    for side, precision, label in SIDES:
        runs = raw[(side, precision)]
        s = summary([t for r in runs for t in r["times"]])
        s.update(label=label, side=side, first=statistics.median(r["first"] for r in runs),
                 rounds=[r["median"] for r in runs], params=runs[0]["trainable_params"],
                 non_trainable=runs[0]["non_trainable"], threads=runs[0]["threads"])
        pooled[(side, precision)] = s
    ref = pooled[("monai", "float32")]["median"]
    rows = []
    for key, s in pooled.items():
        rows.append([s["label"], f"{s['params']:,}", fmt_seconds(s["first"]), f"{s['median']:.3f}",
                     " / ".join(f"{m:.3f}" for m in s["rounds"]), f"{s['min']:.3f}–{s['max']:.3f}",
                     f"{ref / s['median']:.2f}×" if s["side"] == "niftykit" else "—"])
    lines = table(["side", "trainable params", "first step", "median s/step", "per-round medians",
                   "min–max s", "MONAI fp32 / this"], rows)
    nk32 = pooled[("niftykit", "float32")]["median"]
    nkbf = pooled[("niftykit", "mixed_bfloat16")]["median"]
    mobf = pooled[("monai", "bfloat16_autocast")]["median"]
    ratios = [
        f"float32: MONAI / niftykit = {ref:.3f} / {nk32:.3f} s = **{ref / nk32:.2f}×**",
        f"niftykit mixed_bfloat16 vs MONAI float32: {ref:.3f} / {nkbf:.3f} s = **{ref / nkbf:.2f}×**",
        f"bf16 like for like: MONAI autocast / niftykit mixed_bfloat16 = {mobf:.3f} / {nkbf:.3f} s = **{mobf / nkbf:.2f}×**",
        f"niftykit float32 / mixed_bfloat16 = {nk32 / nkbf:.2f}× (bf16 speed-up); "
        f"MONAI float32 / autocast bf16 = {ref / mobf:.2f}×",
    ]
    setup = (f"input {cfg['batch']}×{cfg['size']}³×1, labels {{0, 1}}; each side in a fresh process, "
             f"{rounds} round(s) with the sides interleaved; per process {cfg['warmup']} warm-up steps "
             f"(the first shown apart: graph tracing / allocation) then {cfg['steps']} timed steps; "
             f"median over all timed steps of all rounds. Non-trainable: niftykit "
             f"{pooled[('niftykit', 'float32')]['non_trainable']:,} (BN moving mean/var), MONAI "
             f"{pooled[('monai', 'float32')]['non_trainable']:,} (BN running mean/var). Threads: "
             f"niftykit {pooled[('niftykit', 'float32')]['threads']}; MONAI {pooled[('monai', 'float32')]['threads']}")
    return dict(name=NAME, title=TITLE, setup=setup, table=lines, ratios=ratios,
                raw={f"{k[0]}/{k[1]}": v for k, v in raw.items()})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--worker", choices=["niftykit", "monai"])
    p.add_argument("--precision", default="float32")
    for k, v in FULL.items():
        if k != "rounds":
            p.add_argument(f"--{k}", type=int, default=v)
    a = p.parse_args(argv)
    if a.worker:
        fn = niftykit_worker if a.worker == "niftykit" else monai_worker
        report(fn(a.size, a.batch, a.warmup, a.steps, a.precision))
        return 0
    print_result(run(a.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
