from __future__ import annotations

import numpy as np
import pytest

from niftykit.errors import DataError
from niftykit.io.histogram import HistogramStandardiser
from niftykit.io.labels import LabelMapping

ABDOMINAL = [0, 1, 3, 4, 5, 6, 7, 11, 14]


@pytest.fixture
def label_volumes() -> list[np.ndarray]:
    """Three (12, 10, 8, 1) label maps that together hold every abdominal code."""
    rng = np.random.default_rng(0)
    subsets = (ABDOMINAL[:5], ABDOMINAL[4:], ABDOMINAL)
    return [rng.choice(codes, size=(12, 10, 8, 1)).astype(np.int32) for codes in subsets]


def test_learn_apply_invert_is_identity(label_volumes):
    mapping = LabelMapping.learn(label_volumes)
    assert mapping.codes.tolist() == ABDOMINAL and mapping.num_classes == 9
    for volume in label_volumes:
        indices = mapping.apply(volume, where="case01.nii.gz")
        assert indices.dtype == np.int32 and indices.shape == volume.shape
        assert indices.min() >= 0 and indices.max() <= 8
        back = mapping.invert(indices)
        assert back.dtype == np.uint8
        np.testing.assert_array_equal(back, volume)
    assert mapping.apply(np.array([0, 3, 11, 14])).tolist() == [0, 2, 7, 8]


def test_apply_accepts_whole_number_floats_and_keeps_input():
    mapping = LabelMapping(ABDOMINAL)
    labels = np.array([[14.0, 0.0], [5.0, 11.0]], dtype=np.float32)
    original = labels.copy()
    assert mapping.apply(labels).tolist() == [[8, 0], [4, 7]]
    np.testing.assert_array_equal(labels, original)
    with pytest.raises(DataError, match="non-integer label value 0.5"):
        mapping.apply(np.array([0.5, 1.0]))


def test_unknown_code_names_value_and_place():
    mapping = LabelMapping(ABDOMINAL)
    for bad in (12, 15, -1):
        expected = rf"label value {bad} in labels/case07.nii.gz is not one of the learnt codes 0 1 3"
        with pytest.raises(DataError, match=expected):
            mapping.apply(np.array([0, 1, bad, 3]), where="labels/case07.nii.gz")


def test_sparse_codes_use_searchsorted_and_wide_dtypes():
    wide = LabelMapping([-5, 0, 70000, 100000])
    indices = wide.apply(np.array([100000, -5, 70000]))
    assert indices.tolist() == [3, 0, 2]
    back = wide.invert(indices)
    assert back.dtype == np.int32 and back.tolist() == [100000, -5, 70000]
    with pytest.raises(DataError, match="label value 1 "):
        wide.apply(np.array([1]))
    assert LabelMapping([-1, 0, 300]).invert(np.array([0, 2])).dtype == np.int16


def test_invert_rejects_out_of_range_indices():
    with pytest.raises(DataError, match="class index 9 is outside 0..8"):
        LabelMapping(ABDOMINAL).invert(np.array([0, 9]))


def test_codes_must_be_sorted_unique():
    with pytest.raises(ValueError, match="sorted and unique"):
        LabelMapping([0, 3, 1])
    with pytest.raises(ValueError, match="sorted and unique"):
        LabelMapping([])
    with pytest.raises(DataError, match="no training label maps"):
        LabelMapping.learn([])


def test_save_load_round_trip_in_niftynet_format(tmp_path):
    path = tmp_path / "histogram_ref_file.txt"
    path.write_text("ct 0.0 8.0 15.0 19.0 22.0 30.0 39.0 48.0 58.0 64.0 70.0 83.0 100.0\n")
    mapping = LabelMapping(ABDOMINAL)
    mapping.save(path, "label")
    lines = path.read_text().splitlines()
    assert lines[1:] == ["label_label-from 0 1 3 4 5 6 7 11 14", "label_label-to 0 1 2 3 4 5 6 7 8"]
    assert lines[0].startswith("ct 0.0 8.0")
    assert LabelMapping.load(path, "label") == mapping
    assert HistogramStandardiser.load(path, ["ct"]).landmarks["ct"][1] == 8.0  # the other line still reads
    LabelMapping([0, 1]).save(path, "label")  # replaces in place, keeps the rest
    assert path.read_text().splitlines() == [lines[0], "label_label-from 0 1", "label_label-to 0 1"]


def test_loads_niftynet_float_codes(tmp_path):
    path = tmp_path / "ref.txt"
    path.write_text("label_seg-from 0.0 1.0 3.0\nlabel_seg-to 0 1 2\n")
    assert LabelMapping.load(path, "seg").codes.tolist() == [0, 1, 3]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("label_label-from 0 1 3\n", "no label_label-to line"),
        ("label_label-from 0 3 1\nlabel_label-to 0 1 2\n", "sorted, unique whole numbers"),
        ("label_label-from 0 1.5 3\nlabel_label-to 0 1 2\n", "sorted, unique whole numbers"),
        ("label_label-from 0 1 3\nlabel_label-to 0 1\n", "must be 0 1 ... 2"),
    ],
)
def test_load_errors_name_the_file(tmp_path, text, message):
    path = tmp_path / "ref.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as info:
        LabelMapping.load(path, "label")
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_load_missing_file(tmp_path):
    with pytest.raises(DataError, match="nothere.txt: file not found"):
        LabelMapping.load(tmp_path / "nothere.txt", "label")
