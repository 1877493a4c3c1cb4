from __future__ import annotations

import math

import numpy as np
import pytest

from niftykit.errors import DataError, ImageError
from niftykit.evaluation import evaluate_segmentations, summarise


@pytest.fixture
def pairs(write_label, reference):
    half = reference.copy()
    half[2:6, 2:6, 4:6] = 0  # label 1: 32 of 64 voxels -> Dice 2/3
    return [
        ("case1", write_label("case1_seg.nii.gz", reference), write_label("case1_ref.nii.gz", reference)),
        ("case2", write_label("case2_seg.nii.gz", half), write_label("case2_ref.nii.gz", reference)),
    ]


def test_csv_has_exact_header_and_rows(tmp_path, pairs):
    out = tmp_path / "eval" / "dice.csv"
    rows = evaluate_segmentations(pairs, [1, 2, 3], out)
    assert out.read_text().splitlines() == [
        "subject_id,label,dice",
        "case1,1,1.000000",
        "case1,2,1.000000",
        "case1,3,nan",
        "case2,1,0.666667",
        "case2,2,1.000000",
        "case2,3,nan",
    ]
    assert rows[3] == {"subject_id": "case2", "label": 1, "dice": pytest.approx(2 / 3)}
    assert [p.name for p in out.parent.iterdir()] == ["dice.csv"]


def test_summarise_ignores_nan(tmp_path, pairs):
    means = summarise(evaluate_segmentations(pairs, [1, 2, 3], tmp_path / "dice.csv"))
    assert means[1] == pytest.approx((1 + 2 / 3) / 2)
    assert means[2] == 1.0
    assert math.isnan(means[3])


def test_grid_mismatch_names_both_files(tmp_path, write_label, reference):
    moved = np.eye(4)
    moved[0, 3] = 1.0
    seg = write_label("seg.nii.gz", reference, moved)
    ref = write_label("ref.nii.gz", reference)
    with pytest.raises(ImageError, match=r"seg\.nii\.gz and .*ref\.nii\.gz"):
        evaluate_segmentations([("s", seg, ref)], [1], tmp_path / "dice.csv")
    assert not (tmp_path / "dice.csv").exists()


def test_shape_mismatch_names_both_files(tmp_path, write_label, reference):
    seg = write_label("seg.nii.gz", reference[:, :, :8])
    ref = write_label("ref.nii.gz", reference)
    with pytest.raises(ImageError, match=r"seg\.nii\.gz and .*ref\.nii\.gz.*\(16, 16, 8\) and \(16, 16, 16\)"):
        evaluate_segmentations([("s", seg, ref)], [1], tmp_path / "dice.csv")


def test_existing_csv_kept_without_overwrite(tmp_path, pairs):
    out = tmp_path / "dice.csv"
    out.write_text("old\n")
    with pytest.raises(DataError, match=r"dice\.csv exists"):
        evaluate_segmentations(pairs, [1], out, overwrite=False)
    assert out.read_text() == "old\n"
    evaluate_segmentations(pairs, [1], out)
    assert out.read_text().startswith("subject_id,label,dice\n")
