from __future__ import annotations

import numpy as np
import pytest

from niftykit.errors import DataError
from niftykit.io.histogram import NORM_TYPES, HistogramStandardiser

FRACTIONS = np.array([0.01, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 0.99])


def _base(seed: int, shape=(16, 16, 16)) -> np.ndarray:
    """A skewed positive intensity distribution (gamma), like an MR volume."""
    return np.random.default_rng(seed).gamma(2.0, 1.0, size=shape)


@pytest.fixture
def affine_images() -> list[np.ndarray]:
    """Volumes whose intensities are a * x + b of the same kind of distribution."""
    params = [(1, 0), (3, 50), (0.5, -20), (10, 5)]
    return [(a * _base(seed) + b).astype(np.float32) for seed, (a, b) in enumerate(params)]


@pytest.fixture
def nonlinear_images() -> list[np.ndarray]:
    """Volumes that differ by non-linear monotone maps (so their mapped landmarks differ)."""
    params = [(1, 1, 0), (2, 1.5, 10), (5, 0.7, -3)]
    return [(a * _base(seed) ** g + b).astype(np.float32) for seed, (a, g, b) in enumerate(params)]


def _landmarks(array: np.ndarray, norm_type: str = "percentile") -> np.ndarray:
    return np.percentile(array, 100 * FRACTIONS)[list(NORM_TYPES[norm_type])]


def test_affine_family_maps_onto_one_standard(affine_images):
    standardiser = HistogramStandardiser()
    standard = standardiser.fit(affine_images, "T1")
    assert standard.shape == (13,)
    assert standard[0] == pytest.approx(0.0) and standard[-1] == pytest.approx(100.0)
    assert np.all(np.diff(standard) > 0)
    outs = [standardiser.transform(image, "T1") for image in affine_images]
    for out in outs:
        assert out.dtype == np.float32 and out.flags.c_contiguous
        # percentile uses all landmarks but 25 % and 75 % (as NiftyNet)
        np.testing.assert_allclose(_landmarks(out), standard[list(NORM_TYPES["percentile"])], atol=0.02)
    # the transform is affine for an affine family: images agree voxel for voxel with the first one's transform
    base_out = standardiser.transform(_base(1).astype(np.float32), "T1")
    np.testing.assert_allclose(outs[1], base_out, atol=5e-3)


@pytest.mark.parametrize("norm_type", ["percentile", "quartile", "median"])
def test_nonlinear_family_lands_on_the_learnt_landmarks(nonlinear_images, norm_type):
    standardiser = HistogramStandardiser(norm_type=norm_type)
    standard = standardiser.fit(nonlinear_images, "T2")
    used = standard[list(NORM_TYPES[norm_type])]
    assert used[0] == pytest.approx(0.0) and used[-1] == pytest.approx(100.0)
    for image in nonlinear_images:
        before = np.percentile(image, 100 * FRACTIONS)
        mapped = 100 * (before - before[0]) / (before[-1] - before[0])
        assert not np.allclose(mapped, standard, atol=0.5)  # the images really differ
        np.testing.assert_allclose(_landmarks(standardiser.transform(image, "T2"), norm_type), used, atol=0.02)


def test_transform_extrapolates_beyond_cutoffs_and_keeps_order(affine_images):
    standardiser = HistogramStandardiser()
    standardiser.fit(affine_images, "T1")
    image = affine_images[2]
    out = standardiser.transform(image, "T1")
    assert out.min() < 0.0 and out.max() > 100.0  # below 1 % and above 99 %
    order = np.argsort(image.ravel(), kind="stable")
    assert np.all(np.diff(out.ravel()[order]) >= -1e-4)  # monotone


def test_masks_restrict_the_landmarks(affine_images):
    mask = np.zeros(affine_images[0].shape, dtype=bool)
    mask[4:12, 4:12, 4:12] = True
    standardiser = HistogramStandardiser()
    masked = [np.where(mask, image, -1000.0).astype(np.float32) for image in affine_images]
    standard = standardiser.fit(masked, "T1", masks=[mask] * len(masked))
    assert standard[0] == pytest.approx(0.0) and standard[-1] == pytest.approx(100.0)
    out = standardiser.transform(masked[1], "T1", mask=mask)
    np.testing.assert_allclose(_landmarks(out[mask]), standard[list(NORM_TYPES["percentile"])], atol=0.02)
    with pytest.raises(ValueError):
        standardiser.fit(masked, "T1", masks=[mask])


def test_unknown_modality_and_constant_image():
    standardiser = HistogramStandardiser()
    standardiser.fit([_base(0)], "T1")
    with pytest.raises(DataError, match=r"'FLAIR'.*known: T1"):
        standardiser.transform(_base(0), "FLAIR")
    with pytest.raises(DataError, match="same intensity"):
        standardiser.fit([np.ones((4, 4, 4))], "T2")
    with pytest.raises(DataError, match="no training images"):
        standardiser.fit([], "T2")


def test_bad_settings():
    with pytest.raises(ValueError, match="norm_type"):
        HistogramStandardiser(norm_type="decile")
    with pytest.raises(ValueError, match="cutoff"):
        HistogramStandardiser(cutoff=(0.2, 0.99))
    HistogramStandardiser(cutoff=(0.2, 0.8), norm_type="quartile")  # fine: 20 % < 25 %
    with pytest.raises(ValueError, match="scale"):
        HistogramStandardiser(scale=(10.0, 0.0))


def test_save_load_round_trip_keeps_other_lines(tmp_path, affine_images):
    path = tmp_path / "histogram_ref_file.txt"
    path.write_text("label_label-from 0 1 3\nlabel_label-to 0 1 2\nT1 1 2 3 4 5 6 7 8 9 10 11 12 13\n")
    standardiser = HistogramStandardiser()
    standardiser.fit(affine_images, "T1")
    standardiser.fit(affine_images[:2], "T2")
    standardiser.save(path)
    lines = path.read_text().splitlines()
    assert lines[:2] == ["label_label-from 0 1 3", "label_label-to 0 1 2"]
    assert [line.split()[0] for line in lines] == ["label_label-from", "label_label-to", "T1", "T2"]
    t1 = lines[2].split()
    assert len(t1) == 14 and [float(v) for v in t1[1:]] == standardiser.landmarks["T1"].tolist()
    loaded = HistogramStandardiser.load(path, ["T1", "T2"])
    for mod in ("T1", "T2"):
        np.testing.assert_array_equal(loaded.landmarks[mod], standardiser.landmarks[mod])
    image = affine_images[0]
    np.testing.assert_array_equal(loaded.transform(image, "T1"), standardiser.transform(image, "T1"))


def test_reads_a_niftynet_file(tmp_path):
    path = tmp_path / "ref.txt"
    values = "0.0 8.1 15.3 19.0 22.6 30.4 39.0 48.2 58.7 64.3 70.5 83.2 100.0"
    path.write_text(f"t1 {values}\n\nFLAIR {values}\n")
    loaded = HistogramStandardiser.load(path, ["t1", "FLAIR"], norm_type="quartile")
    assert loaded.landmarks["FLAIR"][3] == pytest.approx(19.0)


def test_load_errors_name_file_and_problem(tmp_path):
    path = tmp_path / "ref.txt"
    with pytest.raises(DataError, match="ref.txt.*file not found"):
        HistogramStandardiser.load(path, ["T1"])
    path.write_text("T1 " + " ".join(map(str, range(13))) + "\nT2 " + " ".join(map(str, range(13))) + "\n")
    with pytest.raises(DataError) as info:
        HistogramStandardiser.load(path, ["T1", "T2", "FLAIR"])
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message and "T1, T2 but not FLAIR" in message and "delete it" in message
    path.write_text("T1 0 10 20 30 100\n")
    with pytest.raises(DataError, match=r"ref.txt.*5 landmarks, expected 13"):
        HistogramStandardiser.load(path, ["T1"], norm_type="quartile")
    path.write_text("T1 0 10 20 30 40 50 40 70 80 90 95 98 100\n")
    with pytest.raises(DataError, match=r"ref.txt.*not finite and increasing"):
        HistogramStandardiser.load(path, ["T1"])
    # a decrease between landmarks that norm_type does not use is accepted (median uses 0, 6, 12)
    path.write_text("T1 0 10 20 30 40 50 60 55 80 90 95 98 100\n")
    assert HistogramStandardiser.load(path, ["T1"], norm_type="median").landmarks["T1"][7] == 55
    path.write_text("T1 0 10 20 x 40 50 60 70 80 90 95 98 100\n")
    with pytest.raises(DataError, match="not all numbers"):
        HistogramStandardiser.load(path, ["T1"])


def test_save_without_overwrite_refuses_existing_file(tmp_path):
    path = tmp_path / "ref.txt"
    path.write_text("x 1 2\n")
    standardiser = HistogramStandardiser()
    standardiser.fit([_base(0)], "T1")
    with pytest.raises(DataError, match="exists"):
        standardiser.save(path, overwrite=False)
    assert path.read_text() == "x 1 2\n"
