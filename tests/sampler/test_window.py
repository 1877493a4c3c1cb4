from __future__ import annotations

import numpy as np
import pytest

from niftykit.sampler.window import (
    ArrayCache,
    WindowSampler,
    boxes_at,
    centre_range,
    common_spatial_shape,
    cut_window,
)


def padded_slice(volume, box, pad=8):
    """The reference: pad the whole volume with zeros, then slice."""
    padded = np.pad(volume, [(pad, pad)] * 3 + [(0, 0)])
    return padded[tuple(slice(a + pad, b + pad) for a, b in zip(box[:3], box[3:]))]


@pytest.mark.parametrize("box", [
    (0, 0, 0, 16, 20, 12),  # the whole volume
    (3, 4, 5, 9, 11, 10),  # inside
    (-3, 4, 5, 4, 11, 10),  # overhang before x
    (12, -2, 8, 19, 6, 15),  # overhang after x and z, before y
    (-4, -4, -4, 20, 24, 16),  # larger than the volume on every axis
    (-7, 0, 0, -2, 5, 5),  # entirely outside
])
def test_cut_window_equals_pad_then_slice(image, box):
    window = cut_window({"image": image}, box)
    expected = padded_slice(image, box)
    assert window["image"].shape == expected.shape
    assert window["image"].dtype == np.float32 and window["image"].flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(window["image"], expected)
    assert window["location"].dtype == np.int32
    np.testing.assert_array_equal(window["location"], box)


def test_cut_window_copies_and_excludes(image, label):
    image.flags.writeable = False
    window = cut_window({"image": image, "label": label, "map": image}, np.array([0, 0, 0, 16, 20, 4]),
                        exclude=("map",))
    assert set(window) == {"image", "label", "location"}
    assert window["label"].dtype == np.int32
    assert window["image"].flags.writeable and not np.shares_memory(window["image"], image)


@pytest.mark.parametrize("box", [(0, 0, 0, 4, 4), (0, 0, 0, 0, 4, 4), (0.0, 0, 0, 4, 4, 4)])
def test_cut_window_refuses_bad_boxes(image, box):
    with pytest.raises(ValueError, match="location"):
        cut_window({"image": image}, box)


def test_centre_range_keeps_windows_inside_or_fixes_them():
    lo, hi = centre_range((12, 12, 5), (4, 5, 8))
    np.testing.assert_array_equal(lo, [2, 2, 0])
    np.testing.assert_array_equal(hi, [11, 10, 5])  # starts 0..8 and 0..7 along x, y: all that fit
    boxes = boxes_at(np.array([[2, 2, 0], [10, 9, 4]]), (12, 12, 5), (4, 5, 8))
    np.testing.assert_array_equal(boxes, [[0, 0, -1, 4, 5, 7], [8, 7, -1, 12, 12, 7]])


def test_common_spatial_shape_refuses_mismatch(image):
    with pytest.raises(ValueError, match="spatial shape"):
        common_spatial_shape({"a": image, "b": image[:, :, :5]})


class FixedSampler(WindowSampler):
    exclude = ("hidden",)

    def locations(self, volumes, n):
        _, window = self.geometry(volumes)
        return np.tile(np.concatenate([[0, 0, 0], window]), (n, 1))


def test_base_class_cuts_what_locations_choose(image):
    windows = FixedSampler((2, 3), 3, None)({"image": image, "hidden": image})
    assert len(windows) == 3
    for window in windows:
        assert set(window) == {"image", "location"}
        np.testing.assert_array_equal(window["image"], image[:2, :3, :1])
    with pytest.raises(NotImplementedError):
        WindowSampler((2, 2, 2), 1, None)({"image": image})
    with pytest.raises(ValueError, match="samples_per_volume"):
        FixedSampler((2, 2, 2), 0, None)


def test_array_cache_hits_only_the_same_read_only_array():
    calls = []
    cache = ArrayCache(max_entries=2)
    a, b, c = (np.zeros(3) for _ in range(3))
    for array in (a, b, c):
        array.flags.writeable = False
    build = lambda: calls.append(1) or len(calls)
    assert cache.get(a, "k", build) == cache.get(a, "k", build) == 1
    assert cache.get(a, "other", build) == 2  # the key is part of the entry
    cache.get(b, "k", build)
    cache.get(c, "k", build)  # evicts a's entries (least recently used)
    assert cache.get(a, "k", build) == 5
    writeable = np.zeros(3)
    cache.get(writeable, "k", build)
    cache.get(writeable, "k", build)
    assert len(calls) == 7  # a writeable array could change in place: never cached
