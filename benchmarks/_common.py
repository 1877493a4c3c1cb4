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


def print_result(res: Mapping[str, Any]) -> None:
    """A benchmark's result as the Markdown ``run.py`` records: title, setup, table, ratios."""
    print(f"\n## {res['title']}\n\n{res['setup']}\n")
    print("\n".join(res["table"]))
    print()
    for r in res["ratios"]:
        print(f"- {r}")


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
    fields: Dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = " " + fields.get("flags", "") + " "
    model = fields.get("model name", "unknown")
    if "cpu family" in fields:
        model += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    if " hypervisor " in flags:
        model += ", virtual machine"
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 ** 2:.1f} GiB"
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f} " in flags]
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


def _busy_cpu_seconds() -> float:
    """Core-seconds the whole machine has spent busy since boot (from /proc/stat)."""
    try:
        import psutil

        t = psutil.cpu_times()
        return float(sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0)
                     - getattr(t, "guest_nice", 0.0))
    except ImportError:
        fields = [float(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        hz = os.sysconf("SC_CLK_TCK")
        # user nice system idle iowait irq softirq steal guest guest_nice
        return sum(fields[i] for i in (0, 1, 2, 5, 6, 7)) / hz


def _own_cpu_seconds() -> float:
    """CPU time of this process and of the workers it has waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Interference:
    """How much CPU other processes took while a benchmark ran.

    Machine-wide busy time minus our own (and our finished workers') CPU time,
    as a share of the machine's capacity over the wall time. A few per cent is
    the kernel and the session; much more means the numbers were disturbed.
    """

    def __enter__(self) -> "Interference":
        self.t0 = time.monotonic()
        self.busy0 = _busy_cpu_seconds()
        self.own0 = _own_cpu_seconds()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall = time.monotonic() - self.t0
        busy = _busy_cpu_seconds() - self.busy0
        own = _own_cpu_seconds() - self.own0
        self.other_seconds = max(busy - own, 0.0)
        cores = os.cpu_count() or 1
        self.other_share = self.other_seconds / (self.wall * cores) if self.wall > 0 else 0.0

    def describe(self) -> str:
        return (f"other processes used {self.other_seconds:.1f} core-s of {self.wall * (os.cpu_count() or 1):.0f} "
                f"({100 * self.other_share:.1f}% of the machine) during this benchmark")
