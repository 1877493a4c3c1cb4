import io

from niftykit.engine.progress import ProgressBar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_file_gets_only_the_finished_line():
    stream = io.StringIO()
    bar = ProgressBar("case01", stream=stream, width=10)
    for done in range(1, 5):
        bar(done, 4)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("case01 [##########] 4/4 windows (")


def test_terminal_redraws_in_place_and_ends_the_line():
    stream = _Terminal()
    bar = ProgressBar("case02", stream=stream, width=4)
    bar(1, 2)
    bar(2, 2)
    text = stream.getvalue()
    assert text.startswith("\rcase02 [##..] 1/2 windows")
    assert text.endswith("windows (0.0s)\n") and text.count("\r") == 2
