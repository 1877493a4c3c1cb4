import numpy as np

from niftykit.engine.summaries import central_slices, window_images


def test_central_slices_are_upright_display_images():
    volume = np.zeros((4, 6, 8))
    volume[3, 5, 7] = 1  # the (+x, +y, +z) corner
    slices = central_slices(np.arange(4 * 6 * 8, dtype=float).reshape(4, 6, 8))
    assert {k: v.shape for k, v in slices.items()} == {
        "axial": (6, 4), "coronal": (8, 4), "sagittal": (8, 6)}
    corner = np.zeros((5, 5, 5))
    corner[4, 4, 2] = 1  # on the axial slice z = 2: +x, +y shows top right
    assert central_slices(corner)["axial"][0, -1] == 1


def test_two_d_windows_give_the_axial_view_only():
    assert list(central_slices(np.zeros((8, 8, 1)))) == ["axial"]


def test_window_images_in_unit_range_with_one_grey_per_class():
    rng = np.random.default_rng(0)
    image = rng.normal(50, 20, (8, 8, 8, 2))
    label = np.full((8, 8, 8, 1), 2)
    logits = np.zeros((8, 8, 8, 3))
    logits[..., 1] = 1.0  # predicts class 1 everywhere
    pictures = window_images(image, label, logits)
    assert len(pictures) == 9
    for name, picture in pictures.items():
        assert picture.min() >= 0 and picture.max() <= 1, name
    assert 0.5 < pictures["image/axial"].max() <= 1.0  # scaled by the window's own range
    assert np.all(pictures["label/coronal"] == 1.0) and np.all(pictures["prediction/sagittal"] == 0.5)


def test_single_channel_outputs_are_scaled_by_range():
    pictures = window_images(np.ones((6, 6, 6, 1)), None, np.linspace(0, 9, 216).reshape(6, 6, 6, 1))
    assert "label/axial" not in pictures
    assert np.all(pictures["image/axial"] == 0)  # flat image
    assert 0 <= pictures["prediction/axial"].min() < pictures["prediction/axial"].max() <= 1
