"""The composed preprocessing: every step applied, then undone onto the input's grid."""

import nibabel as nib
import numpy as np
import pytest

from niftykit.errors import DataError, ImageError
from niftykit.io import Subject, write_image
from niftykit.io.histogram import HistogramStandardiser
from niftykit.io.labels import LabelMapping
from niftykit.io.preprocess import Preprocessor, SourceSettings


def _oblique_lps(spacing=(1.0, 1.5, 2.0), angle=0.3):
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ rotation @ np.diag(spacing)
    affine[:3, 3] = (30.0, -12.0, 7.0)
    return affine


@pytest.fixture
def subject(tmp_path):
    rng = np.random.default_rng(0)
    label = np.zeros((14, 12, 10), np.int16)
    label[2:8, 3:9, 2:6] = 3
    label[8:12, 1:5, 5:9] = 11
    label[5:7, 8:11, 1:3] = 1
    image = (label * 10.0 + rng.normal(0, 1, label.shape)).astype(np.float32)
    affine = _oblique_lps()
    write_image(image, affine, tmp_path / "s1_img.nii.gz")
    write_image(label, affine, tmp_path / "s1_lab.nii.gz")
    return Subject("s1", {"img": tmp_path / "s1_img.nii.gz", "lab": tmp_path / "s1_lab.nii.gz"})


def _preprocessor(**extra):
    settings = dict(images=[SourceSettings("img", interp_order=1)],
                    label=SourceSettings("lab", interp_order=0), num_classes=4,
                    axcodes=("R", "A", "S"), pixdim=(0.5, 0.75, 1.0), padding=(3, 2, 1),
                    pad_to=(40, 0, 0), label_mapping=LabelMapping([0, 1, 3, 11]))
    settings.update(extra)
    return Preprocessor(**settings)


def test_label_through_every_step_and_the_writer_comes_back_identical(subject, tmp_path):
    pre = _preprocessor(whitening=True)
    prepared = pre(subject)
    label = prepared.volumes["label"]
    assert label.dtype == np.uint8 and set(np.unique(label)) <= {0, 1, 2, 3}
    # upsampled by 2 along every axis, padded: (14*2 + 6 -> 40 by pad_to, 12*2 + 4, 10*2 + 2)
    assert label.shape == (40, 28, 22, 1)
    assert prepared.volumes["image"].shape == (40, 28, 22, 1)
    restored = pre.restore(label[..., 0], prepared.geometry, labels=True)
    out = write_image(restored, prepared.source.affine, tmp_path / "out" / "s1_seg.nii.gz")
    original = nib.load(subject.paths["lab"])
    written = nib.load(out)
    np.testing.assert_array_equal(np.asarray(written.dataobj), np.asarray(original.dataobj))
    np.testing.assert_allclose(written.affine, original.affine, atol=1e-6)
    assert written.shape == original.shape


def test_probabilities_restore_onto_the_input_grid(subject):
    pre = _preprocessor()
    prepared = pre(subject, with_label=False)
    assert set(prepared.volumes) == {"image"}
    probs = np.random.default_rng(1).random(prepared.volumes["image"].shape[:3] + (4,))
    restored = pre.restore(probs.astype(np.float32), prepared.geometry, labels=False)
    assert restored.shape == (14, 12, 10, 4)


def test_whitening_and_nyul_change_intensities(subject):
    plain = _preprocessor(pixdim=None, padding=(0, 0, 0), pad_to=(0, 0, 0))(subject)
    white = _preprocessor(pixdim=None, padding=(0, 0, 0), pad_to=(0, 0, 0), whitening=True)(subject)
    assert abs(float(white.volumes["image"].mean())) < 1e-4
    assert float(white.volumes["image"].std()) == pytest.approx(1.0, abs=1e-3)
    standardiser = HistogramStandardiser()
    standardiser.fit([plain.volumes["image"][..., 0]], "img")
    nyul = _preprocessor(pixdim=None, padding=(0, 0, 0), pad_to=(0, 0, 0), histogram=standardiser)
    values = nyul(subject).volumes["image"]
    # the image it learnt from: its cutoff percentiles land on the ends of the standard scale
    assert np.percentile(values, 1) == pytest.approx(0.0, abs=0.5)
    assert np.percentile(values, 99) == pytest.approx(100.0, abs=0.5)


def test_ct_window_and_percentile_clip(subject):
    pre = _preprocessor(images=[SourceSettings("img", ct_window=(0.0, 50.0))], pixdim=None,
                        padding=(0, 0, 0), pad_to=(0, 0, 0))
    image = pre(subject).volumes["image"]
    assert image.min() == pytest.approx(0.0) and image.max() == pytest.approx(1.0)
    pre = _preprocessor(images=[SourceSettings("img", percentile_clip=(5.0, 95.0))], pixdim=None,
                        padding=(0, 0, 0), pad_to=(0, 0, 0))
    raw = nib.load(subject.paths["img"]).get_fdata()
    clipped = pre(subject).volumes["image"]
    assert clipped.max() == pytest.approx(np.percentile(raw, 95), rel=1e-4)


def test_label_outside_num_classes_without_mapping_names_the_file(subject):
    pre = _preprocessor(label_mapping=None)
    with pytest.raises(DataError, match=r"label value 11 in .*s1_lab.nii.gz is outside 0..3"):
        pre(subject)


def test_nan_is_an_error_unless_replaced(subject, tmp_path):
    image = nib.load(subject.paths["img"])
    data = image.get_fdata().astype(np.float32)
    data[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(data, image.affine), subject.paths["img"])
    with pytest.raises(ImageError, match="NaN/Inf"):
        _preprocessor()(subject)
    pre = _preprocessor(images=[SourceSettings("img", replace_nonfinite=-5.0)], pixdim=None,
                        padding=(0, 0, 0), pad_to=(0, 0, 0), axcodes=None)
    assert pre(subject).volumes["image"][0, 0, 0, 0] == -5.0


def test_image_and_label_on_different_grids(subject, tmp_path):
    label = nib.load(subject.paths["lab"])
    shifted = label.affine.copy()
    shifted[0, 3] += 0.5
    nib.save(nib.Nifti1Image(np.asarray(label.dataobj), shifted), subject.paths["lab"])
    with pytest.raises(ImageError, match="not on the same voxel grid.*grid_tolerance_mm"):
        _preprocessor()(subject)
    assert _preprocessor(grid_tolerance_mm=1.0)(subject).volumes["label"].shape[0] == 40


def test_written_output_keeps_the_inputs_xform_codes(subject, tmp_path):
    source = nib.load(subject.paths["img"])
    image = nib.Nifti1Image(source.get_fdata().astype(np.float32), source.affine)
    image.set_qform(source.affine, code=1)
    image.set_sform(source.affine, code=2)
    nib.save(image, subject.paths["img"])
    pre = _preprocessor()
    prepared = pre(subject)
    assert prepared.source.xform_codes == (1, 2)
    restored = pre.restore(prepared.volumes["label"][..., 0], prepared.geometry, labels=True)
    out = nib.load(write_image(restored, prepared.source.affine, tmp_path / "seg.nii.gz",
                               xform_codes=prepared.source.xform_codes))
    assert (int(out.header["qform_code"]), int(out.header["sform_code"])) == (1, 2)
    np.testing.assert_allclose(out.get_qform(), source.affine, atol=1e-5)


def test_multimodal_sources_stack_as_channels_on_one_grid(subject, tmp_path):
    t2 = nib.load(subject.paths["img"])
    write_image(t2.get_fdata().astype(np.float32) * 2.0, t2.affine, tmp_path / "s1_t2.nii.gz")
    two = Subject("s1", {**subject.paths, "t2": tmp_path / "s1_t2.nii.gz"})
    pre = _preprocessor(images=[SourceSettings("img"), SourceSettings("t2")], pixdim=None,
                        padding=(0, 0, 0), pad_to=(0, 0, 0))
    image = pre(two).volumes["image"]
    assert image.shape == (14, 12, 10, 2)
    np.testing.assert_allclose(image[..., 1], 2.0 * image[..., 0], rtol=1e-5, atol=1e-5)
    shifted = t2.affine.copy()
    shifted[:3, 3] += 2.0
    write_image(t2.get_fdata().astype(np.float32), shifted, tmp_path / "s1_t2.nii.gz",
                overwrite=True)
    with pytest.raises(ImageError, match="s1_t2.nii.gz.*not on the same voxel grid|"
                                         "not on the same voxel grid.*s1_t2"):
        pre(two)
