"""Achieved GFLOP/s of network training steps on CPU, against this CPU's measured matmul peak (issue #5).

The issue asks for forward + backward of the dense V-network at 144³ × 1 and of the 3-D U-Net at
64³ × 2, in float32 and ``mixed_bfloat16``: seconds per step, achieved GFLOP/s, and that figure as
a fraction of this CPU's matrix-multiply peak measured in the same run. "× 1" and "× 2" are read
as the batch size; the input has one channel.

- Networks. ``niftykit.network.dense_vnet.DenseVNet(num_classes=9)`` with its default
  parameters (the paper's; they include batch-wise dropout in training, which computes only about
  half the channels of most dense layers: the count is of the step as it runs), input ``(1, 144,
  144, 144, 1)``; ``niftykit.network.unet.UNet3D(num_classes=2, n_features=[16, 32, 64],
  norm="batch")`` as in ``training_step``, input ``(2, 64, 64, 64, 1)``. Random input
  (``numpy.random.default_rng(0)``) and random labels.
- Step. A ``tf.function`` doing what the engine's training step (``niftykit.engine.distribute.replica_steps``)
  does: forward in training mode, loss, regularisation terms, ``GradientTape`` gradients of the
  trainable variables, the optimiser's ``apply_gradients``; the loss is
  ``niftykit.loss.segmentation.dice`` (labels centre-cropped to the output as
  ``SegmentationApplication.loss`` does), the optimiser ``make_optimiser("adam", 1e-3)``; bias
  gradients summed in float32 as the engine has them (``niftykit.engine.runtime.accurate_bias_gradient``).
  The model is built under ``niftykit.engine.runtime.precision_policy(precision)`` as the trainer does.
  TensorFlow's default threads (oneDNN on, XLA off).
- Timing. Each (network, precision) runs in its own fresh process, the processes one after the
  other in rounds (the order reversed every other round); per process some warm-up steps (the
  first, tracing + allocation, shown apart), then timed steps, each ``float(train_step(batch))``;
  the median and min–max over the timed steps of all rounds. Peak memory: the worker's
  ``ru_maxrss`` after the steps (library included).
- Matmul peak. In a fresh process at the start of every round: ``tf.matmul`` of two n×n matrices
  (n = 4096) in float32 and in bfloat16 (oneDNN: ``gemm_api`` for float32, ``brg_matmul`` for
  bfloat16), a few untimed calls, then timed repeats; 2·n³ FLOP per product. The peak of a dtype
  is the best repeat over all rounds (the median is shown too). The same is measured with
  ``torch.mm`` (``torch.set_num_threads(2)``) for reference; "CPU best" is the better of the two
  libraries per dtype.
- FLOPs of a step are counted from the traced graph, not from a formula: the step's concrete
  function graph (``train_step.get_concrete_function(batch).graph``) and every function graph it
  calls (``PartitionedCall`` / ``StatefulPartitionedCall`` bodies, ``While`` bodies and conditions,
  ``If`` / ``Case`` branches, found through the ops' function attributes) are walked. Only the
  matrix-multiply-class ops count: ``Conv2D`` / ``Conv3D``, their ``BackpropInput`` and
  ``BackpropFilter`` ops (any version), depthwise convolutions and their gradients, ``MatMul`` and
  ``BatchMatMul*``; each is 2 × its multiply-accumulates, from static shapes: a convolution and its
  two gradients all cost numel(convolution output) × kernel volume × kernel input channels MACs
  (zero padding included, as a dense convolution computes it), a matmul numel(output) × inner
  dimension. Element-wise work (bias, batch norm, activations, pooling, resampling, the loss, the
  optimiser's update) is ignored. Ops that no output or side effect of the function depends on
  (dead code, which TensorFlow prunes before running: e.g. the gradient with respect to the
  network's input) are not counted. A ``While`` body is counted once (its trip count is not
  static) and every branch of a conditional is counted; the output says if there were any.
  TensorFlow's own FLOP statistics (what ``tf.compat.v1.profiler`` with ``float_operation()``
  sums) cover ``Conv3D`` and ``MatMul`` but not ``Conv3DBackpropInputV2`` /
  ``Conv3DBackpropFilterV2`` (two thirds of a step), and the profiler does not enter nested
  function graphs, hence the counter here. The torch row uses the niftykit U-Net's float32 count
  (same architecture).
- Checks, printed with the results: (a) a 4-layer toy model (``Conv3D`` 3³, strided ``Conv3D``,
  ``Conv3DTranspose``, ``Dense``) counted forward and for a training step against the hand formula
  (the first layer gets no input gradient, so a step is 2× its forward, 3× for the others); (b) each
  network's whole forward pass (traced in training mode, as in the step) counted against a hand
  formula of its layers (Dense V-Net: from the model's hyper-parameters, with the channels that
  batch-wise dropout leaves computed in training); (c) every counted op for which TensorFlow has a
  FLOP statistic compared with it; (d) forward : step per network (about 1 : 3 expected: each
  convolution's forward, input gradient and filter gradient cost the same; a little less, as the
  first convolution's input gradient is not computed). The float32 and mixed_bfloat16 graphs
  must count the same.
- Peer. The same U-Net in torch (``bench_training_step.build_monai_unet``: ``BasicUNet``'s blocks
  wired in three levels, 339,906 trainable parameters as niftykit's), float32, MONAI's ``DiceLoss``
  and Adam, ``torch.set_num_threads(2)``: exactly ``training_step``'s MONAI float32 worker, in a
  fresh process. Ratio niftykit / torch: torch s/step over niftykit s/step (above 1: niftykit
  faster).

Run alone: ``python benchmarks/bench_network_flops.py [--quick] [--steps N] [--rounds N]
[--networks unet,dense_vnet]``.
"""

from __future__ import annotations

import argparse
import collections
import resource
import statistics
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from _common import fmt_seconds, print_result, report, run_worker, summary, table, time_calls

NAME = "network_flops"
TITLE = "Achieved GFLOP/s of training steps (Dense V-Net 144³ × 1, U-Net 64³ × 2) vs the matmul peak, CPU"

TORCH_THREADS = 2
PRECISIONS = ("float32", "mixed_bfloat16")
NETWORKS = {
    # name: (label, input size, batch, classes, warm-up steps, timed steps per round)
    "dense_vnet": dict(label="Dense V-Net (`DenseVNet`, default params)", size=144, batch=1, classes=9,
                       warmup=2, steps=5),
    "unet": dict(label="3-D U-Net (`UNet3D` 16/32/64, batch norm)", size=64, batch=2, classes=2,
                 warmup=3, steps=8),
}
QUICK_SIZES = {"dense_vnet": 48, "unet": 32}
UNET_FEATURES = (16, 32, 64)
FULL = dict(rounds=2, mm_n=4096, mm_warmup=2, mm_repeats=5)
QUICK = dict(rounds=1, mm_n=1024, mm_warmup=1, mm_repeats=3, warmup=1, steps=2)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def make_data(size: int, batch: int, classes: int):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, size, size, size, 1), dtype=np.float32)
    y = rng.integers(0, classes, size=(batch, size, size, size, 1), dtype=np.int32)
    return x, y


# --------------------------------------------------------------------------- FLOP counting

_CONV = {"Conv2D", "Conv3D"}
_CONV_INPUT_GRAD = {"Conv2DBackpropInput", "Conv2DBackpropInputV2", "Conv3DBackpropInput", "Conv3DBackpropInputV2"}
_CONV_FILTER_GRAD = {"Conv2DBackpropFilter", "Conv2DBackpropFilterV2", "Conv3DBackpropFilter", "Conv3DBackpropFilterV2"}
_DEPTHWISE = {"DepthwiseConv2dNative"}
_DEPTHWISE_INPUT_GRAD = {"DepthwiseConv2dNativeBackpropInput"}
_DEPTHWISE_FILTER_GRAD = {"DepthwiseConv2dNativeBackpropFilter"}
_MATMUL = {"MatMul"}
_BATCH_MATMUL = {"BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"}
COUNTED = (_CONV | _CONV_INPUT_GRAD | _CONV_FILTER_GRAD | _DEPTHWISE | _DEPTHWISE_INPUT_GRAD
           | _DEPTHWISE_FILTER_GRAD | _MATMUL | _BATCH_MATMUL)


def _dims(shape: Any, what: str, op: Any) -> List[int]:
    dims = shape.as_list() if shape.rank is not None else None
    if dims is None or any(d is None for d in dims):
        raise ValueError(f"{op.type} {op.name}: {what} has no static shape ({shape}); cannot count its FLOPs")
    return dims


def op_macs(op: Any) -> int:
    """Multiply-accumulates of one matmul/convolution-class op, from its static shapes."""
    t = op.type
    if t in _CONV | _DEPTHWISE:
        out, kernel = _dims(op.outputs[0].shape, "output", op), _dims(op.inputs[1].shape, "filter", op)
    elif t in _CONV_INPUT_GRAD | _DEPTHWISE_INPUT_GRAD:  # (input_sizes, filter, out_backprop)
        out, kernel = _dims(op.inputs[2].shape, "out_backprop", op), _dims(op.inputs[1].shape, "filter", op)
    elif t in _CONV_FILTER_GRAD | _DEPTHWISE_FILTER_GRAD:  # (input, filter_sizes or filter, out_backprop)
        out, kernel = _dims(op.inputs[2].shape, "out_backprop", op), _dims(op.outputs[0].shape, "filter gradient", op)
    elif t in _MATMUL:
        a = _dims(op.inputs[0].shape, "a", op)
        inner = a[0] if op.get_attr("transpose_a") else a[1]
        return int(np.prod(_dims(op.outputs[0].shape, "output", op), dtype=np.int64)) * inner
    elif t in _BATCH_MATMUL:
        a = _dims(op.inputs[0].shape, "x", op)
        inner = a[-2] if op.get_attr("adj_x") else a[-1]
        return int(np.prod(_dims(op.outputs[0].shape, "output", op), dtype=np.int64)) * inner
    else:
        raise KeyError(t)
    # kernel (spatial..., in_channels, out_channels or multiplier); the convolution's output has
    # numel(out) elements, each a dot product over kernel volume x kernel input channels
    # (grouped convolutions: the kernel's input channels are already per group);
    # depthwise: each output element is one channel's kernel volume.
    spatial = int(np.prod(kernel[:-2], dtype=np.int64))
    per_output = spatial if t in _DEPTHWISE | _DEPTHWISE_INPUT_GRAD | _DEPTHWISE_FILTER_GRAD else spatial * kernel[-2]
    return int(np.prod(out, dtype=np.int64)) * per_output


def _function_graph(graph: Any, top: Any, name: str) -> Any:
    """The FuncGraph of a function called from ``graph`` (Python graph if kept, else from its FunctionDef)."""
    for g in (graph, top):
        fn = g._get_function(name)  # noqa: SLF001 (TensorFlow keeps the called functions here)
        if fn is not None and getattr(fn, "graph", None) is not None:
            return fn.graph
    from tensorflow.python.framework.function_def_to_graph import function_def_to_graph
    for fdef in top.as_graph_def().library.function:
        if fdef.signature.name == name:
            return function_def_to_graph(fdef)
    raise ValueError(f"function {name} not found")


def _live_ops(graph: Any, needed: Optional[Sequence[int]] = None) -> set:
    """Ops that the function's (needed) outputs or its control outputs (side effects) depend on."""
    outputs = graph.outputs if needed is None else [graph.outputs[i] for i in needed]
    stack = [t.op for t in outputs] + list(graph.control_outputs)
    live = set()
    while stack:
        op = stack.pop()
        if op in live:
            continue
        live.add(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return live


def count_flops(graph: Any) -> Dict[str, Any]:
    """FLOPs (2 x MACs) of the matmul/convolution-class ops of a function graph and what it calls."""
    stats: Dict[str, Any] = dict(flops=0, by_type=collections.Counter(), ops=collections.Counter(),
                                 dead_flops=0, dead_ops=0, functions=0, while_loops=0, branches=0,
                                 uncounted=collections.Counter(), tf_agree=collections.Counter(),
                                 tf_none=collections.Counter(), tf_differ=[])
    _walk(graph, graph, None, stats, set())
    for key in ("by_type", "ops", "uncounted", "tf_agree", "tf_none"):
        stats[key] = dict(stats[key])
    return stats


def _tf_statistic(graph: Any, op: Any) -> Optional[int]:
    """TensorFlow's own "flops" statistic of an op (what tf.compat.v1.profiler sums), None if it has none."""
    try:
        from tensorflow.python.framework import ops as tf_ops
        from tensorflow.python.profiler.internal import flops_registry  # noqa: F401 (registers more ops)
        value = tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value
    except Exception:  # noqa: BLE001 (a statistic that cannot be computed is no statistic)
        return None
    return None if value is None else int(value)


def _walk(graph: Any, top: Any, needed: Optional[Sequence[int]], stats: Dict[str, Any], stack: set) -> None:
    live = _live_ops(graph, needed)
    for op in graph.get_operations():
        if op.type in COUNTED:
            flops = 2 * op_macs(op)
            if op in live:
                stats["flops"] += flops
                stats["by_type"][op.type] += flops
                stats["ops"][op.type] += 1
                theirs = _tf_statistic(graph, op)
                if theirs is None:
                    stats["tf_none"][op.type] += 1
                elif theirs == flops:
                    stats["tf_agree"][op.type] += 1
                else:
                    stats["tf_differ"].append(f"{op.type} {op.name}: {flops} vs TensorFlow's {theirs}")
            else:
                stats["dead_flops"] += flops
                stats["dead_ops"] += 1
        elif op in live and ("Conv" in op.type or "MatMul" in op.type or op.type == "Einsum"):
            stats["uncounted"][op.type] += 1
        if op not in live:
            continue
        for key, attr in op.node_def.attr.items():
            names = [attr.func.name] if attr.HasField("func") else [f.name for f in attr.list.func]
            for name in names:
                if not name or name in stack:
                    continue
                sub = _function_graph(graph, top, name)
                sub_needed = None
                if op.type in ("PartitionedCall", "StatefulPartitionedCall"):
                    returned = {id(t) for t in graph.outputs}
                    sub_needed = [i for i, t in enumerate(op.outputs)
                                  if any(c in live for c in t.consumers()) or id(t) in returned]
                stats["functions"] += 1
                if "While" in op.type and key == "body":
                    stats["while_loops"] += 1  # body counted once: the trip count is not static
                if op.type in ("If", "StatelessIf", "Case", "StatelessCase"):
                    stats["branches"] += 1  # every branch counted: an upper bound
                _walk(sub, top, sub_needed, stats, stack | {name})


def unet_forward_flops(size: int, batch: int, classes: int, features=UNET_FEATURES, k: int = 3) -> int:
    """Hand formula: FLOPs of UNet3D's convolutions, forward (same padding, 2 convs per level)."""
    macs, cin = 0, 1
    for level, f in enumerate(features):
        vox = batch * (size // 2 ** level) ** 3
        macs += vox * k ** 3 * cin * f + vox * k ** 3 * f * f
        cin = f
    for level in reversed(range(len(features) - 1)):
        f, fin = features[level], features[level + 1]
        vox_in, vox = batch * (size // 2 ** (level + 1)) ** 3, batch * (size // 2 ** level) ** 3
        macs += vox_in * 8 * fin * f  # 2x2x2 transposed convolution, stride 2
        macs += vox * k ** 3 * (2 * f) * f + vox * k ** 3 * f * f  # after concatenating the skip
    macs += batch * size ** 3 * features[0] * classes  # 1x1x1 classifier
    return 2 * macs


def dense_vnet_forward_flops(net: Any, size: int, batch: int, training: bool = True) -> int:
    """Hand formula: FLOPs of DenseVNet's convolutions, forward, from its hyper-parameters.

    In training, batch-wise dropout (``use_bdo``) computes only the kept ``round(keep · growth)``
    output channels of every dense layer but the last of its stack (with batch/instance norm and
    no PReLU), and later layers see only the channels present.
    """
    k3, cin = net.kernel_size ** 3, 1 + (net.spatial_rank if net.use_coords else 0)
    grid = size // 2
    macs = batch * grid ** 3 * net.initial_kernel_size ** 3 * cin * net.n_initial_conv_channels
    c0 = net.n_initial_conv_channels + (cin if net.use_pooled_input else 0)
    skips = cin if net.use_pooled_input else 0
    compact = net.norm in ("batch", "instance", "none", None) and net.activation.lower() != "prelu"
    side = grid
    for g, rates, seg, down in zip(net.n_dense_channels, net.dilation_rates, net.n_seg_channels,
                                   net.n_down_channels):
        vox = batch * side ** 3
        present, last = c0, c0
        for j in range(len(rates)):
            keep = max(1, int(round(net.bdo_keep_prob * g))) if (
                training and net.use_bdo and j < len(rates) - 1 and compact) else g
            macs += vox * k3 * (present if net.use_dense_connections else last) * keep
            present, last = present + keep, keep
        out = present if net.use_dense_connections else last
        macs += vox * k3 * out * seg
        skips += seg
        if down is not None:
            side //= 2
            macs += batch * side ** 3 * k3 * out * down
            c0 = down
    macs += batch * grid ** 3 * net.seg_kernel_size ** 3 * skips * net.num_classes
    return 2 * macs


def toy_check(tf: Any, keras: Any) -> Dict[str, Any]:
    """Count a 4-layer toy model's forward and training step, and the same by hand."""
    b, s = 2, 12
    inputs = keras.Input((s, s, s, 1), batch_size=b)
    h = keras.layers.Conv3D(8, 3, padding="same")(inputs)
    h = keras.layers.Conv3D(8, 3, strides=2, padding="same")(h)
    h = keras.layers.Conv3DTranspose(4, 2, strides=2)(h)
    out = keras.layers.Dense(3)(h)
    model = keras.Model(inputs, out)
    opt = keras.optimizers.Adam(1e-3)
    opt.build(model.trainable_variables)
    x = tf.zeros((b, s, s, s, 1))

    @tf.function
    def forward(images):
        return model(images, training=True)

    @tf.function
    def step(images):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(images, training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    f1 = 2 * (b * s ** 3 * 8) * 27 * 1
    f2 = 2 * (b * (s // 2) ** 3 * 8) * 27 * 8
    f3 = 2 * (b * (s // 2) ** 3 * 8) * 8 * 4  # each input voxel x in-channel scatters 2^3 taps x 4 outputs
    f4 = 2 * (b * s ** 3 * 4) * 3
    counted_fwd = count_flops(forward.get_concrete_function(x).graph)
    counted_step = count_flops(step.get_concrete_function(x).graph)
    return dict(hand_forward=f1 + f2 + f3 + f4, counted_forward=counted_fwd["flops"],
                hand_step=2 * f1 + 3 * (f2 + f3 + f4), counted_step=counted_step["flops"],
                step_dead_flops=counted_step["dead_flops"], step_ops=counted_step["ops"])


# --------------------------------------------------------------------------- workers

def _time_matmuls(run_one, n: int, warmup: int, repeats: int) -> Dict[str, Any]:
    for _ in range(warmup):
        run_one()
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run_one()
        rates.append(2.0 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return dict(best=max(rates), median=statistics.median(rates), rates=rates)


def peak_tf_worker(n: int, warmup: int, repeats: int, checks: bool) -> Dict[str, Any]:
    from niftykit.engine.runtime import import_tensorflow

    tf = import_tensorflow()
    import keras

    rng = np.random.default_rng(0)
    out: Dict[str, Any] = {}
    for dtype in ("float32", "bfloat16"):
        a = tf.cast(tf.constant(rng.standard_normal((n, n), dtype=np.float32)), dtype)
        b = tf.cast(tf.constant(rng.standard_normal((n, n), dtype=np.float32)), dtype)
        matmul = tf.function(lambda p, q: tf.matmul(p, q))
        out[dtype] = _time_matmuls(lambda: matmul(a, b)[0, 0].numpy(), n, warmup, repeats)
    if checks:
        out["toy"] = toy_check(tf, keras)
    out["peak_rss"] = _peak_mb()
    return out


def peak_torch_worker(n: int, warmup: int, repeats: int) -> Dict[str, Any]:
    import torch

    torch.set_num_threads(TORCH_THREADS)
    torch.manual_seed(0)
    out: Dict[str, Any] = {}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        out[name] = _time_matmuls(lambda: torch.mm(a, b), n, warmup, repeats)
    out["threads"] = f"torch.set_num_threads({torch.get_num_threads()})"
    return out


def build_network(network: str, classes: int) -> Any:
    if network == "unet":
        from niftykit.network.unet import UNet3D
        return UNet3D(num_classes=classes, n_features=list(UNET_FEATURES), norm="batch")
    from niftykit.network.dense_vnet import DenseVNet
    return DenseVNet(num_classes=classes)


def _crop_like(labels: Any, outputs: Any) -> Any:
    """Centre-crop labels to the output's spatial shape (as ``SegmentationApplication.loss`` does)."""
    have, want = labels.shape[1:4], outputs.shape[1:4]
    if tuple(have) == tuple(want):
        return labels
    slices = [slice(None)] + [slice((int(h) - int(w)) // 2, (int(h) - int(w)) // 2 + int(w)) for h, w in zip(have, want)]
    return labels[tuple(slices)]


def niftykit_worker(network: str, precision: str, size: int, batch: int, classes: int,
                    warmup: int, steps: int) -> Dict[str, Any]:
    from niftykit.engine.runtime import (accurate_bias_gradient, import_tensorflow,
                                         precision_policy, seed_everything)

    tf = import_tensorflow()
    accurate_bias_gradient(tf)  # as the engine's replica_steps does
    from niftykit.engine.optimiser import make_optimiser
    from niftykit.loss.segmentation import dice

    seed_everything(0)
    x_np, y_np = make_data(size, batch, classes)
    batch_tensors = {"image": tf.constant(x_np), "label": tf.constant(y_np)}
    with precision_policy(precision):  # as trainer.train builds the network
        model = build_network(network, classes)
        out = model(tf.zeros((1, size, size, size, 1), tf.float32))
    optimiser = make_optimiser("adam", 1e-3)

    @tf.function
    def train_step(b):  # the engine's step (niftykit.engine.distribute.replica_steps), written out
        with tf.GradientTape() as tape:
            outputs = model(b["image"], training=True)
            loss = dice(outputs, _crop_like(b["label"], outputs))  # as SegmentationApplication.loss
            total = loss
            if model.losses:
                total += tf.add_n([tf.cast(extra, loss.dtype) for extra in model.losses])
        grads = tape.gradient(total, model.trainable_variables)
        optimiser.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    rss_before = _peak_mb()
    losses: List[float] = []
    result = time_calls(lambda: losses.append(float(train_step(batch_tensors))), warmup, steps)
    peak = _peak_mb()

    step_count = count_flops(train_step.get_concrete_function(batch_tensors).graph)

    @tf.function
    def forward(images):
        return model(images, training=True)

    forward_count = count_flops(forward.get_concrete_function(batch_tensors["image"]).graph)
    result.update(
        step_flops=step_count, forward_flops=forward_count, peak_rss=peak, peak_rss_before_steps=rss_before,
        output_shape=list(out.shape)[1:],
        trainable_params=int(sum(np.prod(v.shape) for v in model.trainable_weights)),
        loss_first=losses[0], loss_last=losses[-1],
        threads=f"TF default (intra {tf.config.threading.get_intra_op_parallelism_threads()}, "
                f"inter {tf.config.threading.get_inter_op_parallelism_threads()}; 0 = all cores)")
    if network == "unet":
        result["hand_forward"] = unet_forward_flops(size, batch, classes)
    else:
        result["hand_forward"] = dense_vnet_forward_flops(model, size, batch, training=True)
    return result


def torch_worker(size: int, warmup: int, steps: int, batch: int) -> Dict[str, Any]:
    from bench_training_step import monai_worker  # the MONAI float32 step of `training_step`

    result = monai_worker(size, batch, warmup, steps, "float32")
    result["peak_rss"] = _peak_mb()
    return result


# --------------------------------------------------------------------------- driver

def _gflop(flops: float) -> str:
    return f"{flops / 1e9:.1f}" if flops >= 1e10 else f"{flops / 1e9:.2f}"


def run(quick: bool = False, steps: Optional[int] = None, rounds: Optional[int] = None,
        networks: Sequence[str] = ("dense_vnet", "unet")) -> Dict[str, Any]:
    cfg = dict(QUICK if quick else FULL)
    rounds = rounds or cfg["rounds"]
    nets = {}
    for name in networks:
        net = dict(NETWORKS[name])
        if quick:
            net.update(size=QUICK_SIZES[name], warmup=cfg["warmup"], steps=cfg["steps"])
        if steps:
            net.update(steps=steps, warmup=min(net["warmup"], 2))
        nets[name] = net
    mm = [f"--mm-n={cfg['mm_n']}", f"--mm-warmup={cfg['mm_warmup']}", f"--mm-repeats={cfg['mm_repeats']}"]

    peaks_tf: List[Dict[str, Any]] = []
    peaks_torch: List[Dict[str, Any]] = []
    raw: Dict[str, List[Dict[str, Any]]] = collections.defaultdict(list)
    for rnd in range(rounds):
        print(f"  round {rnd + 1}/{rounds}: matmul peak, TensorFlow ...", file=sys.stderr, flush=True)
        peaks_tf.append(run_worker("bench_network_flops.py", ["--worker", "peak_tf", *mm]
                                   + (["--checks"] if rnd == 0 else [])))
        print(f"  round {rnd + 1}/{rounds}: matmul peak, torch ...", file=sys.stderr, flush=True)
        peaks_torch.append(run_worker("bench_network_flops.py", ["--worker", "peak_torch", *mm]))
        sides = [(name, p) for name in nets for p in PRECISIONS]
        if "unet" in nets:
            sides.insert(sides.index(("unet", "float32")), ("unet", "torch"))
        for name, precision in (sides if rnd % 2 == 0 else sides[::-1]):
            net = nets[name]
            common = [f"--size={net['size']}", f"--batch={net['batch']}", f"--warmup={net['warmup']}",
                      f"--steps={net['steps']}"]
            print(f"  round {rnd + 1}/{rounds}: {name} {precision} ...", file=sys.stderr, flush=True)
            if precision == "torch":
                raw[f"{name}/torch"].append(run_worker("bench_network_flops.py", ["--worker", "torch", *common],
                                                       timeout=3600))
            else:
                raw[f"{name}/{precision}"].append(run_worker(
                    "bench_network_flops.py", ["--worker", "niftykit", f"--network={name}", f"--precision={precision}",
                                               f"--classes={net['classes']}", *common], timeout=3600))

    peak = {dt: max(p[dt]["best"] for p in peaks_tf) for dt in ("float32", "bfloat16")}
    peak_med = {dt: statistics.median(r for p in peaks_tf for r in p[dt]["rates"]) for dt in peak}
    tpeak = {dt: max(p[dt]["best"] for p in peaks_torch) for dt in peak}
    best = {dt: max(peak[dt], tpeak[dt]) for dt in peak}
    dt_of = {"float32": "float32", "mixed_bfloat16": "bfloat16", "torch": "float32"}

    pooled: Dict[str, Dict[str, Any]] = {}
    for key, runs in raw.items():
        name, precision = key.split("/")
        s = summary([t for r in runs for t in r["times"]])
        s.update(first=statistics.median(r["first"] for r in runs), peak_rss=max(r["peak_rss"] for r in runs),
                 params=runs[0]["trainable_params"], threads=runs[0]["threads"])
        if precision != "torch":
            s.update(flops=runs[0]["step_flops"]["flops"], forward=runs[0]["forward_flops"]["flops"],
                     counts=runs[0]["step_flops"], hand_forward=runs[0].get("hand_forward"),
                     output_shape=runs[0]["output_shape"], loss=(runs[0]["loss_first"], runs[0]["loss_last"]))
        pooled[key] = s
    if "unet/torch" in pooled:
        pooled["unet/torch"]["flops"] = pooled["unet/float32"]["flops"]

    rows = []
    for name, net in nets.items():
        for precision in (("torch",) if name == "unet" else ()) + PRECISIONS:
            key = f"{name}/{precision}"
            s = pooled[key]
            rate = s["flops"] / s["median"] / 1e9
            dt = dt_of[precision]
            side = "torch (MONAI blocks)" if precision == "torch" else "niftykit"
            prec = "float32" if precision == "torch" else precision
            rows.append([net["label"] if precision != "torch" else "3-D U-Net, same architecture", side, prec,
                         f"{net['batch']} × {net['size']}³ × 1", f"{s['params']:,}", _gflop(s["flops"]),
                         fmt_seconds(s["first"]), f"{s['median']:.3f}", f"{s['min']:.3f}–{s['max']:.3f}",
                         f"{rate:.1f}", f"{rate / peak[dt]:.1%}", f"{rate / best[dt]:.1%}", f"{s['peak_rss']:.0f}"])
            s["rate"], s["of_peak"], s["row_label"] = rate, rate / peak[dt], f"{name} {side} {prec}"
    lines = table(["network", "side", "precision", "batch × window × channels", "trainable params", "GFLOP/step",
                   "first step", "median s/step", "min–max s", "achieved GFLOP/s", "of TF matmul peak (same dtype)",
                   "of CPU best matmul (same dtype)", "peak RSS MB"], rows)

    p0 = peaks_tf[0]
    ratios = [
        f"matmul peak ({cfg['mm_n']}² × {cfg['mm_n']}², 2·n³ FLOP, best of {cfg['mm_repeats']} × {rounds} round(s); "
        f"median in brackets): TensorFlow float32 **{peak['float32']:.1f}** ({peak_med['float32']:.1f}) GFLOP/s, "
        f"bfloat16 **{peak['bfloat16']:.1f}** ({peak_med['bfloat16']:.1f}) GFLOP/s; torch (2 threads) float32 "
        f"{tpeak['float32']:.1f}, bfloat16 {tpeak['bfloat16']:.1f} GFLOP/s; CPU best: float32 {best['float32']:.1f}, "
        f"bfloat16 {best['bfloat16']:.1f} GFLOP/s",
    ]
    for name in nets:
        a, b = pooled[f"{name}/float32"], pooled[f"{name}/mixed_bfloat16"]
        ratios.append(f"{name}: bf16 speed-up float32 / mixed_bfloat16 = {a['median']:.3f} / {b['median']:.3f} s = "
                      f"**{a['median'] / b['median']:.2f}×** (matmul peak bf16 / fp32: {peak['bfloat16'] / peak['float32']:.2f}×)")
    if "unet" in nets:
        t, n32, nbf = pooled["unet/torch"], pooled["unet/float32"], pooled["unet/mixed_bfloat16"]
        ratios.append(f"U-Net float32, torch / niftykit = {t['median']:.3f} / {n32['median']:.3f} s = "
                      f"**{t['median'] / n32['median']:.2f}×** ({n32['rate']:.1f} vs {t['rate']:.1f} GFLOP/s); "
                      f"niftykit mixed_bfloat16 vs torch float32: {t['median'] / nbf['median']:.2f}×; torch's U-Net "
                      f"reaches {t['rate'] / tpeak['float32']:.1%} of torch's own fp32 matmul peak")
    for name in nets:
        a, b = pooled[f"{name}/float32"], pooled[f"{name}/mixed_bfloat16"]
        c = a["counts"]
        parts = ", ".join(f"{k} {v / 1e9:.2f} ({c['ops'][k]} ops)" for k, v in sorted(c["by_type"].items()))
        extra = []
        if c["dead_ops"]:
            extra.append(f"{c['dead_ops']} dead op(s), {c['dead_flops'] / 1e9:.3f} GFLOP, not counted")
        if c["functions"]:
            extra.append(f"{c['functions']} nested function graph(s) walked")
        if c["while_loops"]:
            extra.append(f"{c['while_loops']} while loop(s): body counted once")
        if c["branches"]:
            extra.append(f"{c['branches']} conditional branch(es), all counted (an upper bound)")
        if c["uncounted"]:
            extra.append(f"uncounted conv/matmul-like ops: {c['uncounted']}")
        agree = ", ".join(f"{k} {v}" for k, v in sorted(c["tf_agree"].items())) or "none"
        none = ", ".join(sorted(c["tf_none"])) or "none"
        extra.append(f"TensorFlow's own FLOP statistic (what `tf.compat.v1.profiler` sums) agrees op by op for "
                     f"{agree}; it has none for {none}"
                     + (f"; **differs** for {len(c['tf_differ'])} op(s): {c['tf_differ'][:3]}" if c["tf_differ"] else ""))
        same = "same count" if a["flops"] == b["flops"] else f"**differs: bf16 {b['flops'] / 1e9:.3f}**"
        check = ""
        if a.get("hand_forward"):
            check = (f"; forward by hand (layer formula) {a['hand_forward'] / 1e9:.3f} GFLOP: "
                     f"{'equal' if a['hand_forward'] == a['forward'] else 'MISMATCH'}")
        ratios.append(f"FLOPs of one {name} step (float32 graph): {a['flops'] / 1e9:.3f} GFLOP = {parts}"
                      f"{'; ' + '; '.join(extra) if extra else ''}; mixed_bfloat16 graph: {same}; forward only "
                      f"{a['forward'] / 1e9:.3f} GFLOP, forward : step = 1 : {a['flops'] / a['forward']:.2f}{check}; "
                      f"output {a['output_shape']}, loss {a['loss'][0]:.3f} → {a['loss'][1]:.3f}")
    toy = p0.get("toy")
    if toy:
        ok = toy["hand_forward"] == toy["counted_forward"] and toy["hand_step"] == toy["counted_step"]
        ratios.append(f"counter self-check on a toy model (Conv3D 3³, strided Conv3D, Conv3DTranspose 2³/2, Dense; 2 × 12³ × 1): "
                      f"forward counted {toy['counted_forward']:,} vs hand {toy['hand_forward']:,}; step counted "
                      f"{toy['counted_step']:,} vs hand {toy['hand_step']:,} (first layer has no input gradient; "
                      f"{toy['step_dead_flops']:,} FLOP of dead input gradient excluded): {'**passed**' if ok else '**FAILED**'}")
    over = [s["row_label"] for s in pooled.values() if s["of_peak"] > 1.0]
    if over:
        ratios.append("**above 100% of TensorFlow's matmul peak**: " + "; ".join(over) + " — the convolutions "
                      "(oneDNN) ran faster than `tf.matmul` did in the peak measurement, so that measurement is "
                      "not this CPU's peak (disturbed, or TensorFlow's MatMul kernel is the slower one)")
    threads = next(s["threads"] for k, s in pooled.items() if not k.endswith("/torch"))
    setup = (f"\"× 1\" / \"× 2\" of the issue read as the batch size; 1-channel input, random labels (Dense V-Net 9 "
             f"classes, U-Net 2). Step = a `tf.function` doing what the engine's `replica_steps` does (forward "
             f"in training mode, Dice, gradients with bias gradients summed in float32, Adam apply); each (network, precision) in a fresh process, {rounds} round(s), "
             + ", ".join(f"{n}: {v['warmup']} warm-up + {v['steps']} timed steps" for n, v in nets.items())
             + f" per process; median and min–max over the timed steps. GFLOP/step counted from the traced step "
             f"graph (and the function graphs it calls): 2 × multiply-accumulates of the convolution and matmul "
             f"ops only (Conv3D, Conv3DBackpropInputV2, Conv3DBackpropFilterV2, Conv2D variants, MatMul, "
             f"BatchMatMul) from static shapes, zero padding included, dead ops excluded; element-wise ops "
             f"(bias, norm, activations, pooling, resampling, loss, optimiser) ignored; the torch row uses niftykit's "
             f"float32 count. Achieved GFLOP/s = GFLOP/step / median s/step; fractions against the matmul peak of "
             f"the same dtype (float32 for the float32 rows, bfloat16 for mixed_bfloat16) measured in this run. "
             f"Threads: niftykit {threads}; torch {peaks_torch[0]['threads']}")
    return dict(name=NAME, title=TITLE, setup=setup, table=lines, ratios=ratios,
                raw=dict(peaks_tf=peaks_tf, peaks_torch=peaks_torch, runs=dict(raw)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--worker", choices=["peak_tf", "peak_torch", "niftykit", "torch"])
    p.add_argument("--network", default="unet", choices=sorted(NETWORKS))
    p.add_argument("--networks", default="dense_vnet,unet", help="driver: comma-separated networks to run")
    p.add_argument("--precision", default="float32")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--classes", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=None, help="timed steps per process (driver: overrides the defaults)")
    p.add_argument("--rounds", type=int, default=None, help="driver: rounds (default 2, --quick 1)")
    p.add_argument("--mm-n", type=int, default=FULL["mm_n"])
    p.add_argument("--mm-warmup", type=int, default=FULL["mm_warmup"])
    p.add_argument("--mm-repeats", type=int, default=FULL["mm_repeats"])
    p.add_argument("--checks", action="store_true")
    a = p.parse_args(argv)
    if a.worker == "peak_tf":
        report(peak_tf_worker(a.mm_n, a.mm_warmup, a.mm_repeats, a.checks))
    elif a.worker == "peak_torch":
        report(peak_torch_worker(a.mm_n, a.mm_warmup, a.mm_repeats))
    elif a.worker == "niftykit":
        report(niftykit_worker(a.network, a.precision, a.size, a.batch, a.classes, a.warmup, a.steps or 8))
    elif a.worker == "torch":
        report(torch_worker(a.size, a.warmup, a.steps or 8, a.batch))
    else:
        print_result(run(a.quick, steps=a.steps, rounds=a.rounds,
                         networks=[n for n in a.networks.split(",") if n]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
