from __future__ import annotations

import numpy as np
import pytest

from niftykit.sampler.balanced import BalancedSampler


def sampler(seed=0, n=1, window=(4, 4, 4)):
    return BalancedSampler(window, n, np.random.default_rng(seed))


@pytest.fixture
def label():
    """24^3 labels: background 0, a 6^3 block of 2, exactly 10 voxels of 7, and
    class 9 only on the border (where no 4^3 window's centre may lie)."""
    label = np.zeros((24, 24, 24, 1), np.int16)
    label[4:10, 4:10, 4:10] = 2
    label[15, 12:22, 9] = 7
    label[0, :5, :5] = 9
    return label


def test_classes_are_drawn_equally_often(label):
    classes, centres = sampler().draw({"label": label}, 30_000)
    assert classes.dtype == np.int16
    np.testing.assert_array_equal(label[tuple(centres.T)][:, 0], classes)  # centre label = drawn class
    values, counts = np.unique(classes, return_counts=True)
    np.testing.assert_array_equal(values, [0, 2, 7])  # 9 lies outside the valid centres
    # Each count ~ Binomial(30000, 1/3): sd = sqrt(p(1-p)/n) = 0.27 percentage
    # points, so +-1.5 points is 5.5 sd (a correct sampler fails ~1 in 10^7),
    # while frequency-proportional sampling would give the 10-voxel class 0.08 %.
    np.testing.assert_allclose(counts / 30_000, 1 / 3, atol=0.015)


def test_voxels_of_one_class_are_drawn_uniformly(label):
    classes, centres = sampler(seed=4).draw({"label": label}, 30_000)
    rare = centres[classes == 7]
    assert set(rare[:, 1]) == set(range(12, 22))  # every one of the 10 voxels is used
    _, per_voxel = np.unique(rare[:, 1], return_counts=True)
    # ~1000 draws per voxel: sd ~30, so a +-20 % band is ~6.5 sd
    np.testing.assert_allclose(per_voxel / per_voxel.mean(), 1, atol=0.2)


def test_windows_stay_inside_and_keep_the_label(label):
    image = np.zeros((24, 24, 24, 2), np.float32) + label
    for window in sampler(n=100, window=(4, 5, 6))({"image": image, "label": label}):
        assert set(window) == {"image", "label", "location"}
        x0, y0, z0, x1, y1, z1 = window["location"]
        assert min(x0, y0, z0) >= 0 and max(x1, y1, z1) <= 24
        np.testing.assert_array_equal(window["label"], label[x0:x1, y0:y1, z0:z1])
        np.testing.assert_array_equal(window["label"], window["image"][..., :1])


def test_class_index_is_built_once_per_read_only_label(label, monkeypatch):
    calls = []
    argsort = np.argsort
    monkeypatch.setattr(np, "argsort", lambda *a, **k: calls.append(1) or argsort(*a, **k))
    label.flags.writeable = False
    balanced = sampler(n=4)
    for _ in range(4):
        balanced({"label": label})
    assert len(calls) == 1


def test_2d_labels_and_2_5d_windows(label):
    classes, centres = sampler(window=(4, 4)).draw({"label": np.ascontiguousarray(label[:, :, 9:10])}, 3000)
    assert set(classes) == {0, 2, 7} and np.all(centres[:, 2] == 0)
    classes, centres = sampler(window=(4, 4)).draw({"label": label}, 3000)  # 2-D windows, 3-D volume
    assert set(classes) == {0, 2, 7}
    np.testing.assert_array_equal(label[tuple(centres.T)][:, 0], classes)


def test_missing_label_is_an_error(image):
    with pytest.raises(ValueError, match="'label'"):
        sampler()({"image": image})
    with pytest.raises(ValueError, match="one channel"):
        BalancedSampler((4, 4, 4), 1, np.random.default_rng(0), label_name="image")({"image": image})
