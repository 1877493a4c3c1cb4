"""Shared by the worked examples' tests: the repository root on ``sys.path`` (so that
``application: applications.<module>:<Class>`` imports under any pytest invocation, as it does
under ``python -m niftykit`` from the root) and a CLI runner that keeps the log."""

import contextlib
import io
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from niftykit.cli import main  # noqa: E402

CONFIGS = ROOT / "configs"
_LOSS = re.compile(r"training iter (\d+), loss=(-?[0-9.]+(?:e[-+]?\d+)?)")


def run(argv):
    """``niftykit <argv>`` in this process: ``(exit status, what it logged on stdout)``."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main([str(a) for a in argv])
    return status, out.getvalue()


def losses(log):
    """The ``training iter N, loss=X`` values of a log, in order."""
    return [float(loss) for _, loss in _LOSS.findall(log)]


@pytest.fixture(scope="session")
def cli():
    """``cli.run(argv)``, ``cli.losses(log)``, ``cli.CONFIGS``, ``cli.ROOT``."""
    return SimpleNamespace(run=run, losses=losses, CONFIGS=CONFIGS, ROOT=ROOT)
