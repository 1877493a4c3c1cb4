import io

from niftykit.engine.progress import TrainingProgress, duration


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_lines_every_n_with_rate_and_eta():
    clock, stream = _Clock(), io.StringIO()
    progress = TrainingProgress(0, 100, every_n=10, stream=stream, clock=clock)
    lines = {}
    for iteration in range(1, 101):
        clock.now += 5.0 if iteration == 1 else 0.5  # the first iteration traces the graph
        line = progress.step(iteration, 0.25, 1e-3)
        if line:
            lines[iteration] = line
    assert sorted(lines) == [1] + list(range(10, 101, 10))
    assert lines[1] == "training iter 1, loss=0.2500, lr=0.001 (1/100, timing...)"
    assert lines[10] == "training iter 10, loss=0.2500, lr=0.001 (10/100, 2 it/s, ETA 0:00:45)"
    assert lines[100].endswith("ETA 0:00:00)")
    assert stream.getvalue() == ""  # not a terminal: only the returned lines, no live line


def test_resumed_runs_count_from_the_start_and_terminals_get_a_live_line():
    clock, stream = _Clock(), _Terminal()
    progress = TrainingProgress(200, 300, every_n=50, stream=stream, clock=clock)
    assert progress.step(201, 0.5, 0.01).startswith("training iter 201, loss=0.5000")
    clock.now += 1.0
    assert progress.step(202, 0.5, 0.01) is None
    assert stream.getvalue().startswith("\r\x1b[Ktraining iter 202, loss=0.5000, lr=0.01 (202/300, 1 it/s")
    progress.clear()
    assert stream.getvalue().endswith("\r\x1b[K")


def test_duration():
    assert duration(3725.4) == "1:02:05" and duration(-1) == "0:00:00"
