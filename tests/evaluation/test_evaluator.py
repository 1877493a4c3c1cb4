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


# -- metrics, units and spacing -------------------------------------------------------
from niftykit.evaluation import resolve_metrics, summarise_metrics  # noqa: E402

ANISOTROPIC = np.diag([0.7, 1.0, 2.5, 1.0])


def test_surface_metrics_use_the_reference_spacing(tmp_path, write_label, reference):
    seg = reference.copy()
    seg[2:6, 2:6, 4:6] = 0  # label 1: the z = 2, 3 half of the cube
    seg[seg == 2] = 0  # label 2 missed
    pairs = [("case1", write_label("seg.nii.gz", seg, ANISOTROPIC), write_label("ref.nii.gz", reference, ANISOTROPIC))]
    out = tmp_path / "eval.csv"
    metrics = ("Dice", "jaccard", "tp", "fn", "hausdorff_distance", "hausdorff95", "average_distance", "surface_dice")
    rows = evaluate_segmentations(pairs, [1, 2, 3], out, metrics=metrics, tolerance_mm=1.0)
    # label 1 surfaces: seg (32 voxels) within 0 mm (28) or 0.7 mm (4, one x step) of the cube's;
    # cube (56) within 0 mm (28), 2.5 mm (12, one z step) or 5 mm (16, two z steps) of the half's
    assert out.read_text().splitlines() == [
        "subject_id,label,dice,jaccard,tp,fn,hausdorff,hausdorff95,average_distance,surface_dice",
        f"case1,1,0.666667,0.500000,32,32,5.000000,5.000000,{(4 * 0.7 + 12 * 2.5 + 16 * 5) / 88:.6f},"
        f"{60 / 88:.6f}",
        "case1,2,0.000000,0.000000,0,8,inf,inf,inf,0.000000",
        "case1,3,nan,nan,0,0,nan,nan,nan,nan",
    ]
    assert rows[0]["tp"] == 32 and rows[0]["average_distance"] == pytest.approx(112.8 / 88)
    assert summarise(rows, "hausdorff_distance") == {1: 5.0, 2: math.inf, 3: pytest.approx(math.nan, nan_ok=True)}


def test_foreground_units_merge_all_labels(tmp_path, write_label, reference):
    seg = reference.copy()
    seg[seg == 2] = 1  # wrong label, right place: perfect foreground
    seg[2:6, 2:6, 5] = 0  # 16 of 72 foreground voxels lost
    pairs = [("s", write_label("seg.nii.gz", seg), write_label("ref.nii.gz", reference))]
    out = tmp_path / "fg.csv"
    rows = evaluate_segmentations(pairs, [1], out, metrics=("dice", "sensitivity", "precision"), units="foreground")
    assert out.read_text().splitlines() == [
        "subject_id,foreground,dice,sensitivity,precision",
        f"s,1,{2 * 56 / (56 + 72):.6f},{56 / 72:.6f},1.000000",
    ]
    assert summarise(rows) == {1: pytest.approx(2 * 56 / 128)}


@pytest.fixture
def two_components(write_label, reference):
    """Reference: cube r1 (64 voxels) and cube r2 (8). Segmentation: two slabs in r1, a false positive."""
    seg = np.zeros_like(reference)
    seg[2:6, 2:6, 2:4] = 1  # s1: 32 voxels of r1
    seg[2:6, 2:6, 5] = 3  # s2: 16 voxels of r1, any non-zero label counts
    seg[13:15, 0:2, 0:2] = 1  # s3: touches no reference component
    return [("s", write_label("seg.nii.gz", seg), write_label("ref.nii.gz", reference))]


def test_cc_units_match_reference_components(tmp_path, two_components):
    out = tmp_path / "cc.csv"
    rows = evaluate_segmentations(two_components, [1, 2], out, metrics=("dice", "tp", "fp", "fn", "tn"), units="cc")
    n = 16 ** 3
    assert out.read_text().splitlines() == [
        "subject_id,component,dice,tp,fp,fn,tn",
        f"s,r1_s1&2,{2 * 48 / (48 + 64):.6f},48,0,16,{n - 64}",
        f"s,r2_s0,0.000000,0,0,8,{n - 8}",
        f"s,r0_s3,0.000000,0,8,0,{n - 8}",
    ]
    assert summarise(rows) == {"cc": pytest.approx(2 * 48 / 112 / 3)}


def test_cc_surface_metrics_on_cropped_components(tmp_path, two_components):
    rows = evaluate_segmentations(two_components, [1], tmp_path / "cc.csv",
                                  metrics=("hausdorff", "surface_dice"), units="cc")
    assert rows[0]["hausdorff"] == 1.0  # the cube's z = 4 ring is 1 mm from either slab
    assert rows[1]["hausdorff"] == math.inf and rows[2]["surface_dice"] == 0.0


def test_summarise_metrics_ignores_nan(tmp_path, pairs):
    rows = evaluate_segmentations(pairs, [1, 3], tmp_path / "e.csv", metrics=("dice", "jaccard"))
    summary = summarise_metrics(rows)
    assert summary[1] == {"dice": pytest.approx((1 + 2 / 3) / 2), "jaccard": pytest.approx((1 + 0.5) / 2)}
    assert math.isnan(summary[3]["dice"]) and math.isnan(summary[3]["jaccard"])
    with pytest.raises(ValueError, match="'hausdorff' was not evaluated"):
        summarise(rows, "hausdorff")


def test_metric_names_and_aliases():
    assert resolve_metrics(["Dice", "dice", "Jaccard", "hausdorff95_distance", "positive_predictive_values"]) == (
        "dice", "jaccard", "hausdorff95", "precision")


def test_unknown_metric_or_unit_fails_before_writing(tmp_path, pairs):
    out = tmp_path / "e.csv"
    with pytest.raises(ValueError, match=r"unknown evaluation metric 'dcie'; did you mean 'dice'\?.*valid: dice, jaccard"):
        evaluate_segmentations(pairs, [1], out, metrics=("dcie",))
    with pytest.raises(ValueError, match="unknown evaluation units 'voxel'.*label, foreground, cc"):
        evaluate_segmentations(pairs, [1], out, units="voxel")
    assert not out.exists()


def test_label_map_with_channels_is_refused(tmp_path, write_label, reference):
    two = np.stack([reference, reference], axis=-1)
    pairs = [("s", write_label("seg.nii.gz", two), write_label("ref.nii.gz", two))]
    with pytest.raises(ImageError, match=r"seg\.nii\.gz: a label map must have one channel, got 2"):
        evaluate_segmentations(pairs, [1], tmp_path / "e.csv")
