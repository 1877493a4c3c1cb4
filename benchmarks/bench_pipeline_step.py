"""Training step fed by niftykit's pipeline vs fed from memory: does the network ever wait?

The network, loss, optimiser and step are the trainer's own: the config of
``bench_training_windows.py`` (8 synthetic 256×256×128 subjects, 9 classes, balanced 64³ windows,
random flips + rotation ±10° + scaling ±10%, 8 windows per volume visit, 2 sampler workers, batch 2)
gives ``SegmentationApplication.build_network()`` = ``UNet3D(num_classes=9, n_features=[16, 32, 64],
norm="batch")``, ``app.loss`` = ``niftykit.loss.segmentation.dice``, ``make_optimiser("adam", 1e-3)``,
and the step is ``niftykit.engine.distribute.replica_steps`` (a ``tf.function``: GradientTape, loss,
``apply_gradients``). Each step is timed as ``trainer._loop`` times an iteration:
``float(train_step(batch))``, with the batch's fetch included.

- pipeline-fed: the batches come from the trainer's dataset (``trainer._prepare``, ``_preflight``
  (untimed, fills the volume cache), ``_spec``, ``pipeline.plan_queue``, ``_dataset``,
  ``_Errors.next``); the sampler workers run beside the training step, on the same 2 cores.
- in memory: one augmented, balanced batch of 2 windows, cut by the same application sampler and
  held as tensors, fed again at every step; no pipeline exists in that process.

Each mode runs in its own fresh process, alternating, in rounds. Per process: warm-up steps (the
first, tracing, shown apart; the pipeline's shuffle buffer fills during the warm-up), then timed
steps. Reported: median and min–max seconds per step over all timed steps of all rounds, and for
the pipeline-fed mode the median time the step loop spent in the fetch (``_Errors.next``); also the
process's CPU time per timed step (all threads), whose difference between the modes is the CPU the
sampler workers take from the 2 cores the step runs on.
Ratio pipeline-fed / in-memory: the target is at most 1.05 (the network never waits for data).

Run alone: ``python benchmarks/bench_pipeline_step.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from _common import fmt_seconds, print_result, report, run_worker, summary, table
from bench_training_windows import niftykit_pipeline, write_config, write_dataset

NAME = "pipeline_step"
TITLE = "Training step fed by the pipeline vs from memory, 3-D U-Net 16/32/64, 9 classes, batch 2 of 64³, CPU"

FULL = dict(warmup=6, steps=20, rounds=2)
QUICK = dict(warmup=2, steps=4, rounds=1)
MODES = [("memory", "in memory (the same batch repeated)"),
         ("pipeline", "pipeline-fed (augmented, balanced, 2 workers)")]
TARGET = 1.05


def worker(mode: str, config_path: str, warmup: int, steps: int) -> Dict[str, Any]:
    from niftykit.engine import trainer
    from niftykit.engine.distribute import replica_steps
    from niftykit.engine.optimiser import make_optimiser
    from niftykit.engine.runtime import precision_policy

    if mode == "pipeline":
        app, tf, spec, next_batch, info = niftykit_pipeline(config_path)
    else:
        from niftykit.application.segmentation import SegmentationApplication
        from niftykit.config import load_config
        from niftykit.engine.runtime import import_tensorflow, seed_everything

        app = SegmentationApplication(load_config(config_path))
        tf = import_tensorflow(app.config.system.cuda_devices)
        seed_everything(app.config.system.seed)
        subject_list, validation = trainer._prepare(app)
        trainer._preflight(app, subject_list, validation)
        spec = trainer._spec(app, subject_list[0])
        windows = app.make_sampler(np.random.default_rng(1), "training")(
            app.load_volumes(subject_list[0], "training"))[:app.config.network.batch_size]
        batch = {k: tf.constant(np.stack([w[k] for w in windows])) for k in spec}
        next_batch = lambda: batch  # noqa: E731
        info = {}
    cfg = app.config
    with precision_policy(cfg.network.precision):
        model = app.build_network()
        model({k: tf.zeros((1,) + tuple(s), dtype=d) for k, (s, d) in spec.items()}["image"])
    optimiser = make_optimiser(cfg.training.optimiser, cfg.training.lr)
    train_step, _ = replica_steps(app.loss, model, optimiser, model.trainable_variables,
                                  tf.distribute.get_strategy(), 0.0, tf)

    times: List[float] = []
    fetches: List[float] = []
    losses: List[float] = []
    first = 0.0
    cpu0 = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            cpu0 = time.process_time()
        tic = time.perf_counter()
        b = next_batch()
        fetched = time.perf_counter()
        losses.append(float(train_step(b)[0]))
        toc = time.perf_counter()
        if i == 0:
            first = toc - tic
        if i >= warmup:
            times.append(toc - tic)
            fetches.append(fetched - tic)
    cpu = (time.process_time() - cpu0) / steps  # all the process's threads: TensorFlow's and the samplers'
    result = summary(times, first=first)
    result.update(fetch=summary(fetches), cpu=cpu, params=int(model.count_params()), loss_first=losses[0],
                  loss_last=losses[-1], **info)
    return result


def run(quick: bool = False) -> Dict[str, Any]:
    cfg = dict(QUICK if quick else FULL)
    rounds = cfg.pop("rounds")
    raw: Dict[str, List[Dict[str, Any]]] = {m: [] for m, _ in MODES}
    with tempfile.TemporaryDirectory(prefix="niftykit-bench-step-") as tmp:
        folder = Path(tmp)
        print("  writing the 8 subjects ...", file=sys.stderr, flush=True)
        dataset = write_dataset(folder, quick)
        config = write_config(folder, dataset["data"], True, "augmented")
        for rnd in range(rounds):
            for mode, label in MODES:
                print(f"  round {rnd + 1}/{rounds}: {label} ...", file=sys.stderr, flush=True)
                args = ["--worker", mode, "--config", config] + [f"--{k}={v}" for k, v in cfg.items()]
                raw[mode].append(run_worker("bench_pipeline_step.py", args, timeout=1200))
    pooled = {}
    for mode, label in MODES:
        runs = raw[mode]
        s = summary([t for r in runs for t in r["times"]])
        s.update(label=label, first=statistics.median(r["first"] for r in runs),
                 rounds=[r["median"] for r in runs],
                 fetch=statistics.median(t for r in runs for t in r["fetch"]["times"]),
                 fetch_max=max(t for r in runs for t in r["fetch"]["times"]), params=runs[0]["params"],
                 cpu=statistics.median(r["cpu"] for r in runs))
        pooled[mode] = s
    mem, pipe = pooled["memory"]["median"], pooled["pipeline"]["median"]
    rows = [[s["label"], f"{s['params']:,}", fmt_seconds(s["first"]), f"{s['median']:.3f}",
             " / ".join(f"{m:.3f}" for m in s["rounds"]), f"{s['min']:.3f}–{s['max']:.3f}",
             f"{fmt_seconds(s['fetch'])} (max {fmt_seconds(s['fetch_max'])})", f"{s['cpu']:.3f}"]
            for s in pooled.values()]
    lines = table(["feed", "params", "first step", "median s/step", "per-round medians", "min–max s",
                   "fetch median", "process CPU s/step"], rows)
    ratio = pipe / mem
    cpu_mem, cpu_pipe = pooled["memory"]["cpu"], pooled["pipeline"]["cpu"]
    ratios = [f"pipeline-fed / in-memory = {pipe:.3f} / {mem:.3f} s = **{ratio:.3f}×** "
              f"(target ≤ {TARGET}: {'met' if ratio <= TARGET else 'not met'})",
              f"CPU per step (all threads of the process): {cpu_pipe:.3f} s pipeline-fed vs {cpu_mem:.3f} s in memory; "
              f"the pipeline's share of the 2 cores while the step runs: {cpu_pipe - cpu_mem:+.3f} core-s per step"]
    info = raw["pipeline"][0]
    setup = (f"data and config as in `training_windows` ({'×'.join(map(str, dataset['shape']))}, "
             f"{info['queue']}); each mode in a fresh process, {rounds} round(s) alternating the modes; per process "
             f"{cfg['warmup']} warm-up steps (the first shown apart) then {cfg['steps']} timed steps, each timed as "
             f"the trainer's loop does (fetch + `float(train_step(batch))`); median and min–max over all timed "
             f"steps of all rounds. TensorFlow default threads; sampler workers: `system.num_threads: 2`")
    return dict(name=NAME, title=TITLE, setup=setup, table=lines, ratios=ratios, raw=raw)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--worker", choices=[m for m, _ in MODES])
    p.add_argument("--config", default="")
    for k, v in FULL.items():
        if k != "rounds":
            p.add_argument(f"--{k}", type=int, default=v)
    a = p.parse_args(argv)
    if a.worker:
        report(worker(a.worker, a.config, a.warmup, a.steps))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # the endless tf.data generators would hold the interpreter's exit
    print_result(run(a.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
