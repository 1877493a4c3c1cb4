"""Crop boxes (``crop_box_file``): read, matched to subjects, cut first and undone exactly."""

import nibabel as nib
import numpy as np
import pytest

from niftykit.errors import DataError
from niftykit.io import Subject
from niftykit.io.crop import CropBox, read_crop_boxes
from niftykit.io.geometry import apply_geometry, invert_geometry, plan_geometry
from niftykit.io.labels import LabelMapping
from niftykit.io.preprocess import Preprocessor, SourceSettings
from niftykit.sampler import ResizeAggregator, resize_to

HEADER = "id,publisher,original_id,extent_left,extent_right,extent_ant,extent_post,extent_inf,extent_sup\n"
SHAPE = (20, 16, 12)
START, STOP = (3, 2, 4), (13, 10, 10)   # a 10 x 8 x 6 box


def _oblique_lps():
    c, s = np.cos(0.3), np.sin(0.3)
    affine = np.eye(4)
    affine[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) \
        @ np.diag([0.8, 1.2, 2.5])
    affine[:3, 3] = (40.0, -15.0, 3.0)
    return affine


def _labels():
    label = np.zeros(SHAPE, np.uint8)
    label[4:9, 3:7, 5:8] = 6
    label[9:12, 5:9, 6:10] = 11
    label[5:7, 7:9, 8:9] = 3
    return label


@pytest.fixture
def case(tmp_path):
    """One subject (``case07_CT`` / ``case07_Label``, nibabel-written) and its cropping.csv."""
    label = _labels()
    image = (label * 10.0 + np.random.default_rng(0).normal(0, 1, SHAPE)).astype(np.float32)
    image[[0, -1]] = 99.0   # outside the box only: statistics must not see it
    for name, data in (("case07_CT", image), ("case07_Label", label)):
        nib.save(nib.Nifti1Image(data, _oblique_lps()), str(tmp_path / f"{name}.nii.gz"))
    csv = tmp_path / "cropping.csv"
    csv.write_text(HEADER + "case07,test,7,3,13,2,10,4,10\ncase08,test,8,0,5,0,5,0,5\n")
    subject = Subject("case07_", {"ct": tmp_path / "case07_CT.nii.gz",
                                  "label": tmp_path / "case07_Label.nii.gz"})
    return subject, csv


def _preprocessor(csv, **extra):
    settings = dict(images=[SourceSettings("ct", crop_box_file=csv)],
                    label=SourceSettings("label", interp_order=0, crop_box_file=csv),
                    num_classes=4, label_mapping=LabelMapping([0, 3, 6, 11]))
    settings.update(extra)
    return Preprocessor(**settings)


# -- the file ---------------------------------------------------------------------------
def test_rows_match_subjects_exactly_or_without_separators(case):
    _, csv = case
    boxes = read_crop_boxes(csv)
    assert boxes.find("case07_") == CropBox(START, STOP)   # NiftyNet's id for case07_CT
    assert boxes.find("case08") == CropBox((0, 0, 0), (5, 5, 5))
    assert boxes.find("case07_").shape == (10, 8, 6)


def test_a_subject_without_a_row_is_an_error_naming_the_file_and_id(case):
    _, csv = case
    with pytest.raises(DataError, match=r"case99_CT\.nii\.gz: no crop box for subject 'case99_' "
                                        r"in .*cropping\.csv"):
        read_crop_boxes(csv).find("case99_", where="data/case99_CT.nii.gz")


@pytest.mark.parametrize("text, message", [
    ("id,extent_left\ncase07,1\n", "missing extent_right"),
    (HEADER, "it has no rows"),
    (HEADER + "case07,t,7,3,13,2,10,4,x\n", "extent_sup = 'x' is not a number"),
    (HEADER + "case07,t,7,3,13,2,10,4,9.5\n", "not a whole voxel index"),
    (HEADER + "case07,t,7,3,13,2,10,4,10\ncase07,t,7,3,13,2,10,4,10\n", "line 3: id 'case07' given twice"),
])
def test_bad_files_are_errors(tmp_path, text, message):
    path = tmp_path / "cropping.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_crop_boxes(path)


def test_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(DataError, match="cannot read the crop box file .*nope.csv"):
        read_crop_boxes(tmp_path / "nope.csv")


# -- the geometry -----------------------------------------------------------------------
def test_crop_then_reorient_matches_nibabel_and_inverts_exactly():
    affine, label = _oblique_lps(), _labels()[..., None]
    geometry = plan_geometry(SHAPE, affine, axcodes=("R", "A", "S"), crop=(START, STOP))
    sliced = nib.Nifti1Image(label[..., 0], affine).slicer[3:13, 2:10, 4:10]
    expected = nib.as_closest_canonical(sliced)
    np.testing.assert_allclose(geometry.affine, expected.affine, atol=1e-9)
    out = apply_geometry(label, geometry, 0)
    np.testing.assert_array_equal(out[..., 0], np.asarray(expected.dataobj))
    back = invert_geometry(out, geometry, 0)
    assert back.shape == SHAPE + (1,)
    inside = np.zeros(SHAPE, bool)
    inside[3:13, 2:10, 4:10] = True
    np.testing.assert_array_equal(back[..., 0], np.where(inside, label[..., 0], 0))


def test_probabilities_are_background_outside_the_box():
    geometry = plan_geometry(SHAPE, _oblique_lps(), crop=(START, STOP))
    probs = np.full((10, 8, 6, 3), 1 / 3, np.float32)
    back = invert_geometry(probs, geometry, 1, fill=[1.0, 0.0, 0.0])
    assert back.shape == SHAPE + (3,)
    np.testing.assert_allclose(back[0, 0, 0], [1, 0, 0])
    np.testing.assert_allclose(back[3, 2, 4], [1 / 3] * 3, rtol=1e-6)
    np.testing.assert_allclose(back.sum(-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("start, stop", [((0, 0, 0), (21, 16, 12)), ((-1, 0, 0), (5, 5, 5)),
                                         ((5, 0, 0), (5, 5, 5))])
def test_a_box_outside_the_grid_is_refused(start, stop):
    with pytest.raises(ValueError, match="crop box"):
        plan_geometry(SHAPE, np.eye(4), crop=(start, stop))


# -- the preprocessing ------------------------------------------------------------------
def test_round_trip_restores_the_file_grid_exactly(case, tmp_path):
    subject, csv = case
    pre = _preprocessor(csv, axcodes=("A", "R", "S"), whitening=True)
    prepared = pre(subject)
    assert prepared.volumes["image"].shape == (8, 10, 6, 1)   # the box, A-R-S ordered
    assert prepared.volumes["label"].shape == (8, 10, 6, 1)
    # whitening over the box only: the 99s outside it are not in the statistics
    image = prepared.volumes["image"][..., 0]
    assert abs(float(image.mean())) < 1e-5 and abs(float(image.std()) - 1) < 1e-3
    restored = pre.restore(prepared.volumes["label"][..., 0], prepared.geometry, labels=True)
    source = nib.load(subject.paths["label"])
    assert restored.shape == source.shape
    np.testing.assert_allclose(prepared.source.affine, source.affine, atol=1e-6)
    np.testing.assert_array_equal(restored, _labels())   # every label voxel is inside the box


def test_crop_resize_restore_gives_the_voxels_inside_the_box(case):
    subject, csv = case
    pre = _preprocessor(csv)
    prepared = pre(subject, with_label=True)
    label = prepared.volumes["label"]
    window = resize_to(label, (20, 16, 12), 0)   # the resize sampler, by 2 along each axis
    logits = np.eye(4, dtype=np.float32)[window[..., 0]]   # a perfect network
    aggregator = ResizeAggregator(label.shape[:3], 4, order=1)
    aggregator.add(logits[None])
    probs = aggregator.result()
    labels = pre.restore(np.argmax(probs, axis=-1).astype(np.int32), prepared.geometry, labels=True)
    expected = np.zeros(SHAPE, np.uint8)
    expected[3:13, 2:10, 4:10] = _labels()[3:13, 2:10, 4:10]
    np.testing.assert_array_equal(labels, expected)
    restored = pre.restore(probs, prepared.geometry, labels=False)
    assert restored.shape == SHAPE + (4,)
    np.testing.assert_allclose(restored[0, 0, 0], [1, 0, 0, 0])   # background outside
    np.testing.assert_array_equal(np.argmax(restored, -1), np.searchsorted([0, 3, 6, 11], expected))


def test_landmark_images_are_the_box(case):
    subject, csv = case
    images = _preprocessor(csv).read_images(subject)
    assert images[0].spatial_shape == (10, 8, 6)
    corner = _oblique_lps() @ np.array([3.0, 2.0, 4.0, 1.0])   # the box's first voxel, in mm
    np.testing.assert_allclose(images[0].affine[:3, 3], corner[:3])
    np.testing.assert_array_equal(images[0].array[..., 0],
                                  nib.load(subject.paths["ct"]).get_fdata()[3:13, 2:10, 4:10])


def test_a_subject_without_a_row_stops_the_preprocessing(case, tmp_path):
    subject, csv = case
    csv.write_text(HEADER + "case08,test,8,0,5,0,5,0,5\n")
    with pytest.raises(DataError, match=r"case07_CT\.nii\.gz: no crop box for subject 'case07_'"):
        _preprocessor(csv)(subject)


def test_a_box_outside_the_image_stops_the_preprocessing(case):
    subject, csv = case
    csv.write_text(HEADER + "case07,test,7,3,13,2,10,4,13\n")
    with pytest.raises(DataError, match=r"case07_CT\.nii\.gz .*crop box \[3:13, 2:10, 4:13\] lies "
                                        r"outside the image \(shape 20x16x12\)"):
        _preprocessor(csv)(subject)


def test_sources_naming_different_box_files_are_an_error(case, tmp_path):
    _, csv = case
    with pytest.raises(DataError, match=r"\[inputs.label\] crop_box_file: .*other.csv differs"):
        _preprocessor(csv, label=SourceSettings("label", interp_order=0,
                                                crop_box_file=tmp_path / "other.csv"))


def test_one_source_naming_the_file_crops_them_all(case):
    subject, csv = case
    prepared = _preprocessor(csv, label=SourceSettings("label", interp_order=0))(subject)
    assert prepared.volumes["label"].shape == (10, 8, 6, 1)
