from __future__ import annotations

import numpy as np
import pytest

from niftykit.sampler import UniformSampler, resolve_window
from niftykit.sampler.window import WindowSampler


def sample(window, n=50, seed=0, **volumes):
    return UniformSampler(window, n, np.random.default_rng(seed))(volumes)


def test_resolve_window_full_extent_and_2d():
    assert resolve_window((0, 5, -1), (10, 20, 30)) == (10, 5, 30)
    assert resolve_window((4, 6), (10, 20, 1)) == (4, 6, 1)


def test_windows_lie_inside_and_match_the_volume(image):
    for window in sample((6, 7, 5), image=image):
        x0, y0, z0, x1, y1, z1 = window["location"]
        assert window["location"].dtype == np.int32
        assert 0 <= x0 and x1 <= 16 and 0 <= y0 and y1 <= 20 and 0 <= z0 and z1 <= 12
        assert (x1 - x0, y1 - y0, z1 - z0) == (6, 7, 5)
        assert window["image"].shape == (6, 7, 5, 2)
        assert window["image"].flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(window["image"], image[x0:x1, y0:y1, z0:z1])


def test_named_volumes_share_the_window(image, label):
    windows = sample((8, 8, 8), image=image, label=label)
    assert len(windows) == 50
    for window in windows:
        assert set(window) == {"image", "label", "location"}
        assert window["label"].dtype == np.int32 and window["image"].dtype == np.float32
        np.testing.assert_array_equal(window["label"], (window["image"][..., :1] % 7).astype(np.int32))


def test_every_start_is_reachable(image):
    starts = {int(w["location"][0]) for w in sample((14, 20, 12), n=300, image=image)}
    assert starts == {0, 1, 2}


def test_non_positive_size_means_whole_extent(image):
    for window in sample((0, 8, -1), n=5, image=image):
        assert window["image"].shape == (16, 8, 12, 2)
        assert list(window["location"][[0, 2, 3, 5]]) == [0, 0, 16, 12]


def test_small_volume_is_zero_padded_symmetrically():
    volume = np.ones((5, 20, 20, 1), np.float32)
    for window in sample((8, 8, 8), n=10, volume=volume):
        assert window["volume"].shape == (8, 8, 8, 1)
        assert window["location"][0] == -1 and window["location"][3] == 7
        assert window["volume"][1:6].min() == 1.0
        assert window["volume"][0].max() == 0.0 and window["volume"][6:].max() == 0.0


def test_seeded_sampling_is_reproducible(image):
    first = [w["location"] for w in sample((4, 4, 4), seed=11, image=image)]
    again = [w["location"] for w in sample((4, 4, 4), seed=11, image=image)]
    other = [w["location"] for w in sample((4, 4, 4), seed=12, image=image)]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_volumes_of_different_shapes_are_refused(image):
    with pytest.raises(ValueError, match="spatial shape"):
        sample((4, 4, 4), image=image, label=np.zeros((16, 20, 11, 1)))


def test_3d_volume_and_reserved_name_are_refused(image):
    with pytest.raises(ValueError, match="channels"):
        sample((4, 4, 4), image=image[..., 0])
    with pytest.raises(ValueError, match="location"):
        sample((4, 4, 4), location=image)


def test_locations_are_window_boxes_and_cut_by_the_base_class(image):
    sampler = UniformSampler((4, 5, 6), 7, np.random.default_rng(3))
    assert isinstance(sampler, WindowSampler)
    boxes = sampler.locations({"image": image}, 40)
    assert boxes.shape == (40, 6) and boxes.dtype == np.int64
    np.testing.assert_array_equal(boxes[:, 3:] - boxes[:, :3], np.tile([4, 5, 6], (40, 1)))
    assert boxes[:, :3].min() >= 0 and np.all(boxes[:, 3:] <= [16, 20, 12])


def test_2d_volumes_and_2d_windows_from_3d_volumes(image):
    flat = np.ascontiguousarray(image[:, :, :1])
    for window in sample((5, 6), n=20, image=flat):
        assert window["image"].shape == (5, 6, 1, 2)
        assert window["location"][2] == 0 and window["location"][5] == 1
    slices = {int(w["location"][2]) for w in sample((5, 6), n=300, image=image)}
    assert slices == set(range(12))  # 2.5-D: every slice of the 3-D volume is reachable
