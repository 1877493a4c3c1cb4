"""Shared helpers for the benchmarks: timing, workers, tables, machine description.

Nothing here imports TensorFlow or torch: the heavy libraries are only
imported inside the worker processes that a benchmark starts, so that one
side's thread pools (TensorFlow's Eigen pool, torch's OpenMP threads, which
keep spinning after a parallel region) never run beside the other side's.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Sequence

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULT_PREFIX = "BENCH_RESULT "


def worker_env() -> Dict[str, str]:
    """Environment for a worker process: quiet TensorFlow, nothing else changed."""
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def run_worker(script: str, args: Sequence[str], timeout: float = 900.0) -> Dict[str, Any]:
    """Run ``python benchmarks/<script> --worker ...`` and return the JSON it reports.

    The worker prints one line ``BENCH_RESULT {json}``; everything else it
    prints (library warnings) is passed through to our standard error.
    """
    cmd = [sys.executable, str(HERE / script), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=worker_env(), cwd=str(ROOT), timeout=timeout)
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
    if proc.returncode != 0 or result is None:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise RuntimeError(f"benchmark worker failed (exit {proc.returncode}): {' '.join(cmd)}")
    return result


def report(result: Mapping[str, Any]) -> None:
    """Called in a worker: hand the result back to the parent."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def time_calls(fn: Callable[[], Any], warmup: int, repeats: int) -> Dict[str, Any]:
    """Call ``fn`` ``warmup`` times untimed (the first one timed apart), then ``repeats`` times timed."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    for _ in range(max(warmup - 1, 0)):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return summary(times, first=first)


def summary(times: Sequence[float], **extra: Any) -> Dict[str, Any]:
    ts = sorted(times)
    return dict(median=statistics.median(ts), min=ts[0], max=ts[-1], n=len(ts), times=list(times), **extra)


def fmt_seconds(s: float) -> str:
    if s >= 1.0:
        return f"{s:.3f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} µs"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> List[str]:
    """A Markdown table (also readable as plain text on stdout)."""
    cells = [list(map(str, header))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    out = [line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells[1:]]
    return out


def load_average() -> float:
    return os.getloadavg()[0]


def machine() -> Dict[str, str]:
    """nproc, CPU model, RAM and OS, read from the machine itself."""
    model = "unknown"
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1]
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 ** 2:.1f} GiB"
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags]
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        nproc = str(os.cpu_count())
    return dict(nproc=nproc, cpu=model, isa=" ".join(isa) or "-", ram=ram,
                os=f"{platform.system()} {platform.release()}", python=platform.python_version())


VERSION_SNIPPET = (
    "import importlib.metadata as m\n"
    "for p in ('tensorflow-cpu','tensorflow','keras','torch','monai','torchio','numpy','nibabel','niftykit'):\n"
    "    try: print(p, m.version(p))\n"
    "    except m.PackageNotFoundError: pass\n"
)


def versions() -> Dict[str, str]:
    """Installed versions, asked of the interpreter that runs the benchmarks (``python -c``)."""
    out = subprocess.run([sys.executable, "-c", VERSION_SNIPPET], capture_output=True, text=True).stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
