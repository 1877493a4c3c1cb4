from pathlib import Path

import pytest

from niftykit.config import Config, SegmentationConfig
from niftykit.config.schema import sections_with_key


def test_equality_ignores_source():
    seg = SegmentationConfig(num_classes=3)
    first = Config(segmentation=seg, source=Path("a.yaml"))
    second = Config(segmentation=SegmentationConfig(num_classes=3), source=Path("b.ini"))
    assert first == second
    second.training.lr = 0.5
    assert first != second


def test_task_is_the_active_section():
    config = Config(segmentation=SegmentationConfig())
    assert config.task is config.segmentation and config.task_section == "segmentation"
    with pytest.raises(ValueError):
        Config().task


def test_sections_with_key():
    assert sections_with_key("queue_length") == ["network"]
    assert sections_with_key("spatial_window_size") == ["inference", "inputs"]
    assert sections_with_key("num_classes") == ["segmentation", "cascade", "classification"]
    assert sections_with_key("nope") == []
