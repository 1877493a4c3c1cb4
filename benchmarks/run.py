"""Run niftykit's benchmarks: each one times niftykit and its peer in the same run.

    python benchmarks/run.py                  # all benchmarks (about 4.5 minutes on 2 cores)
    python benchmarks/run.py --quick          # smoke run (about 50 s), small inputs, few repeats
    python benchmarks/run.py --only window_sampling
    python benchmarks/run.py --record         # also append a dated section to benchmarks/RESULTS.md

Needs the peers installed (``make bench`` does it, into .venv-bench): torch (CPU),
monai, torchio, besides niftykit with tensorflow-cpu. Nothing here asserts a
speed; the numbers are printed, and recorded on request.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_augmentation  # noqa: E402
import bench_network_flops  # noqa: E402
import bench_pipeline_step  # noqa: E402
import bench_preprocessing  # noqa: E402
import bench_sliding_window  # noqa: E402
import bench_training_step  # noqa: E402
import bench_training_throughput  # noqa: E402
import bench_training_windows  # noqa: E402
import bench_window_sampling  # noqa: E402
from _common import HERE, ROOT, Interference, load_average, machine, versions  # noqa: E402

BENCHMARKS = {m.NAME: m for m in (bench_training_step, bench_window_sampling, bench_preprocessing,
                                  bench_augmentation, bench_training_windows, bench_pipeline_step,
                                  bench_sliding_window, bench_network_flops)}
BENCHMARKS[bench_training_throughput.NAME] = bench_training_throughput  # issue 6
RESULTS = HERE / "RESULTS.md"


def wait_for_quiet(threshold: float, max_wait: float, poll: float = 30.0) -> float:
    """Wait until the 1-minute load average is at most ``threshold`` (or ``max_wait`` passes); return it."""
    deadline = time.monotonic() + max_wait
    load = load_average()
    while load > threshold and time.monotonic() < deadline:
        print(f"1-min load {load:.2f} > {threshold}: waiting {poll:.0f} s for the machine to be quiet ...",
              file=sys.stderr, flush=True)
        time.sleep(poll)
        load = load_average()
    if load > threshold:
        print(f"warning: 1-min load still {load:.2f} after {max_wait:.0f} s; running anyway (recorded)",
              file=sys.stderr, flush=True)
    return load


def command_line() -> str:
    exe = Path(sys.executable)
    exe_text = str(exe.relative_to(ROOT)) if exe.is_relative_to(ROOT) else str(exe)
    script = os.path.relpath(Path(sys.argv[0]).resolve(), Path.cwd())
    return " ".join(shlex.quote(a) for a in [exe_text, script, *sys.argv[1:]])


def section(results: List[Dict[str, Any]], info: Dict[str, Any]) -> str:
    m, v = info["machine"], info["versions"]
    lines = [
        f"## {info['date']}",
        "",
        f"- command (from the repository root): `{info['command']}`",
        f"- machine: {m['nproc']} cores (`nproc`), {m['cpu']} ({m['isa']}), {m['ram']} RAM, {m['os']}, Python {m['python']}",
        "- versions (`python -c`, importlib.metadata, same interpreter): " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- 1-min load average: {info['load_before']:.2f} at the start, {info['load_after']:.2f} at the end; "
        f"wall time {info['elapsed']:.0f} s",
    ]
    if info["discarded"]:
        lines.append("- earlier attempts of this command discarded because other work disturbed them: "
                     + "; ".join(info["discarded"]))
    lines.append("")
    for res in results:
        lines += [f"### {res['title']}", "", res["setup"], ""]
        lines += res["table"]
        lines += [""] + [f"- {r}" for r in res["ratios"]] + [f"- {res['interference']}", ""]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="niftykit benchmarks (niftykit and its peer, same run, same machine)")
    p.add_argument("--quick", action="store_true", help="smoke run: small inputs, few repeats (not recordable)")
    p.add_argument("--only", action="append", choices=sorted(BENCHMARKS), metavar="NAME",
                   help=f"run only this benchmark (repeatable): {', '.join(sorted(BENCHMARKS))}")
    p.add_argument("--record", action="store_true", help=f"append a dated section to {RESULTS.relative_to(ROOT)}")
    p.add_argument("--load-threshold", type=float, default=0.5,
                   help="with --record, wait until the 1-min load average is at most this (default 0.5)")
    p.add_argument("--max-interference", type=float, default=0.10,
                   help="warn when other processes took more than this share of the CPU during a benchmark")
    p.add_argument("--attempts", type=int, default=3,
                   help="with --record, re-run (after waiting for a quiet machine) up to this many times "
                        "while other processes disturb a benchmark; the last attempt is recorded (default 3)")
    p.add_argument("--max-wait", type=float, default=900.0, help="longest wait for a quiet machine, s (default 900)")
    a = p.parse_args(argv)
    if a.record and a.quick:
        p.error("--quick numbers are a smoke test; record a full run")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    names = a.only or list(BENCHMARKS)
    info: Dict[str, Any] = dict(machine=machine(), versions=versions(), command=command_line())
    m = info["machine"]
    print(f"machine: {m['nproc']} cores, {m['cpu']} ({m['isa']}), {m['ram']} RAM; {m['os']}; Python {m['python']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    attempts = a.attempts if a.record else 1
    discarded: List[str] = []
    for attempt in range(1, attempts + 1):
        if a.record:
            load = wait_for_quiet(a.load_threshold, a.max_wait)
        else:
            load = load_average()
            if load > a.load_threshold:
                print(f"note: 1-min load is {load:.2f}; other work on the machine will slow both sides unevenly")
        info["load_before"] = load
        print(f"1-min load at start: {load:.2f}" + (f" (attempt {attempt} of {attempts})" if a.record else ""))

        t0 = time.monotonic()
        results = []
        for name in names:
            with Interference() as other:
                res = BENCHMARKS[name].run(quick=a.quick)
            res["interference"] = other.describe()
            res["other_share"] = other.other_share
            BENCHMARKS[name].print_result(res)
            print(f"- {res['interference']}")
            sys.stdout.flush()
            results.append(res)
        info["elapsed"] = time.monotonic() - t0
        info["load_after"] = load_average()
        info["date"] = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        print(f"\nwall time {info['elapsed']:.0f} s; 1-min load at the end: {info['load_after']:.2f}")
        worst = max(r["other_share"] for r in results)
        if worst <= a.max_interference:
            break
        print(f"warning: other processes took up to {100 * worst:.0f}% of the machine during a benchmark; "
              "these numbers are disturbed", file=sys.stderr)
        if attempt < attempts:
            discarded.append(f"{info['date']}: other processes took up to {100 * worst:.0f}% of the machine")
            print("discarding this attempt and trying again", file=sys.stderr)
    info["discarded"] = discarded

    if a.record:
        if not RESULTS.exists():
            RESULTS.write_text("# Benchmark results\n\n")
        with RESULTS.open("a", encoding="utf-8") as fh:
            fh.write("\n" + section(results, info))
        print(f"recorded in {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
