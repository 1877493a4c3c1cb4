"""Synthetic abdominal CT (``niftykit.data.abdomen``): files, anatomy, geometry, report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from niftykit.data import make_abdominal_phantoms, phantoms_main, separability_report
from niftykit.data.abdomen import LABELS, SMALL_SHAPE
from niftykit.data.abdomen_grid import AXCODES
from niftykit.data.abdomen_tissue import PHASES
from niftykit.errors import DataError

CODES = {name: code for code, name in LABELS.items()}
N_CASES = 4


@pytest.fixture(scope="module")
def phantom_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantoms")
    manifest = make_abdominal_phantoms(out, N_CASES, seed=0, shape=SMALL_SHAPE)
    return out, manifest


def _load(out: Path, case: dict):
    image, label = nib.load(out / case["image"]), nib.load(out / case["label"])
    return image, label, np.asarray(image.dataobj), np.asarray(label.dataobj)


def _files(folder: Path) -> dict:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_same_seed_gives_byte_identical_files_and_cases_do_not_depend_on_n(tmp_path, phantom_set):
    make_abdominal_phantoms(tmp_path / "a", 2, seed=0, shape=SMALL_SHAPE)
    make_abdominal_phantoms(tmp_path / "b", 2, seed=0, shape=SMALL_SHAPE)
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert sorted(first) == ["case000_CT.nii.gz", "case000_Label.nii.gz", "case001_CT.nii.gz",
                             "case001_Label.nii.gz", "cropping.csv", "phantoms.json"]
    assert first == second
    out, _ = phantom_set  # the same seed with n=4: the first two cases are the same files
    assert first["case001_CT.nii.gz"] == (out / "case001_CT.nii.gz").read_bytes()


def test_different_seeds_differ(tmp_path, phantom_set):
    make_abdominal_phantoms(tmp_path, 1, seed=1, shape=SMALL_SHAPE)
    out, _ = phantom_set
    for name in ("case000_CT.nii.gz", "case000_Label.nii.gz"):
        assert (tmp_path / name).read_bytes() != (out / name).read_bytes()


def test_types_codes_and_anisotropic_truthful_affines(phantom_set):
    out, manifest = phantom_set
    for case in manifest["cases"]:
        image, label, ct, labels = _load(out, case)
        assert image.get_data_dtype() == np.int16 and label.get_data_dtype() == np.uint8
        assert ct.shape == labels.shape == SMALL_SHAPE
        assert set(np.unique(labels)) == {0, *LABELS}  # every organ, public codes only
        zooms = image.header.get_zooms()
        assert zooms[2] > 1.2 * zooms[0] and zooms[0] == pytest.approx(zooms[1])
        assert "".join(nib.aff2axcodes(image.affine)) == case["axcodes"]
        assert np.allclose(image.affine, label.affine) and np.allclose(image.affine, case["affine"], atol=1e-5)
        assert not np.allclose(image.affine[:3, :3], np.diag(np.diag(image.affine[:3, :3])))  # oblique
    assert [case["axcodes"] for case in manifest["cases"]] == list(AXCODES)[:N_CASES]


def test_organ_volumes_are_plausible(phantom_set):
    out, manifest = phantom_set
    for case in manifest["cases"]:
        volume = case["organ_volume_ml"]
        assert max(volume, key=volume.get) == "liver"
        assert 800 < volume["liver"] < 3000
        for small in ("gallbladder", "esophagus"):
            assert 1 < volume[small] < min(volume["spleen"], volume["stomach"], volume["left_kidney"])
        counts = np.bincount(_load(out, case)[3].ravel(), minlength=15)
        assert counts[CODES["liver"]] * np.prod(case["spacing_mm"]) / 1000 == pytest.approx(volume["liver"], rel=1e-3)


@pytest.mark.parametrize("first, second", [("pancreas", "duodenum"), ("gallbladder", "liver"),
                                           ("spleen", "stomach")])
def test_organs_touch_where_they_do(phantom_set, first, second):
    out, manifest = phantom_set
    for case in manifest["cases"]:
        labels = _load(out, case)[3]
        grown = ndimage.binary_dilation(labels == CODES[first])  # one voxel, face neighbours
        assert (grown & (labels == CODES[second])).any(), (case["id"], first, second)


def _world_centroid(labels: np.ndarray, affine: np.ndarray, code: int) -> np.ndarray:
    index = np.argwhere(labels == code).mean(axis=0)
    return affine[:3, :3] @ index + affine[:3, 3]


def test_organs_are_on_the_patients_side_in_every_storage_orientation(tmp_path):
    canonical = []
    for axcodes in AXCODES:
        manifest = make_abdominal_phantoms(tmp_path / axcodes, 1, seed=3, shape=SMALL_SHAPE,
                                           orientations=(axcodes,))
        image, label, ct, labels = _load(tmp_path / axcodes, manifest["cases"][0])
        assert "".join(nib.aff2axcodes(label.affine)) == axcodes
        liver = _world_centroid(labels, label.affine, CODES["liver"])
        for left in ("spleen", "left_kidney"):  # RAS+: the patient's left is -x
            assert _world_centroid(labels, label.affine, CODES[left])[0] < liver[0] - 50
        assert _world_centroid(labels, label.affine, CODES["gallbladder"])[1] > liver[1]  # anterior
        ras_ct, ras_label = nib.as_closest_canonical(image), nib.as_closest_canonical(label)
        canonical.append((np.asarray(ras_ct.dataobj), np.asarray(ras_label.dataobj), ras_ct.affine))
    for ct, labels, affine in canonical[1:]:  # the same patient, only stored differently
        assert np.array_equal(ct, canonical[0][0]) and np.array_equal(labels, canonical[0][1])
        assert np.allclose(affine, canonical[0][2])


def test_outside_the_body_and_field_of_view_is_minus_1000(phantom_set):
    out, manifest = phantom_set
    nx, ny, _ = SMALL_SHAPE
    i, j = np.meshgrid(np.arange(nx) - (nx - 1) / 2, np.arange(ny) - (ny - 1) / 2, indexing="ij")
    corners = np.hypot(i, j) > 0.54 * min(nx, ny)  # beyond the circular reconstruction FOV
    for case in manifest["cases"]:
        ct, labels = _load(out, case)[2:]
        assert (ct[corners] == -1000).all() and (labels[corners] == 0).all()
        outside = ndimage.binary_erosion(ct == -1000, iterations=2)  # air around the body
        assert outside.mean() > 0.1 and (labels[outside] == 0).all()
        assert ct.min() >= -1024 and np.median(ct[labels == CODES["liver"]]) > 0


def test_separability_report_in_manifest(phantom_set):
    _, manifest = phantom_set
    report = manifest["separability"]
    assert set(report["fraction"]) == set(LABELS.values())
    assert all(0.0 <= f <= 1.0 for f in report["fraction"].values())
    # Liver and spleen share a range in every phase, and pancreas sits within bowel-wall,
    # spleen and liver ranges: a large share of each lies in another organ's [p1, p99].
    assert sum(f > 0.3 for f in report["fraction"].values()) >= 2
    assert report["pairwise"]["liver"]["spleen"] > 0.3 and report["pairwise"]["pancreas"]["duodenum"] > 0.3
    for low, high in report["ranges_hu"].values():
        assert -1024 <= low <= high <= 3071
    assert set(manifest["separability_by_phase"]) <= set(PHASES)


def test_separability_report_counts_by_the_stated_rule():
    histograms = np.zeros((len(LABELS), 4096), dtype=np.int64)
    histograms[0, 1024:1124] = 1  # organ 0: HU 0..99, one voxel each
    histograms[1, 1074:1174] = 1  # organ 1: HU 50..149
    report = separability_report(histograms)
    spleen, kidney = LABELS[1], LABELS[3]
    assert report["ranges_hu"][spleen] == [0, 98] and report["ranges_hu"][kidney] == [50, 148]
    assert report["fraction"][spleen] == pytest.approx(0.5)  # HU 50..99 of 0..99
    assert report["fraction"][kidney] == pytest.approx(0.49)  # HU 50..98 of 50..149
    assert set(report["fraction"]) == {spleen, kidney}


def test_cropping_csv_boxes_hold_every_organ_voxel(phantom_set):
    out, manifest = phantom_set
    with open(out / "cropping.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["id", "publisher", "original_id", "extent_left", "extent_right", "extent_ant",
                             "extent_post", "extent_inf", "extent_sup"]
    assert [row["id"] for row in rows] == [case["id"] for case in manifest["cases"]]
    for row, case in zip(rows, manifest["cases"]):
        box = [int(row[key]) for key in list(row)[3:]]
        labels = _load(out, case)[3]
        inside = np.zeros(labels.shape, bool)
        inside[box[0]:box[1], box[2]:box[3], box[4]:box[5]] = True
        assert (labels[~inside] == 0).all() and inside.mean() < 0.8
        assert box == list(case["crop"].values())


def test_manifest_describes_the_set(phantom_set):
    out, manifest = phantom_set
    assert json.loads((out / "phantoms.json").read_text()) == manifest
    assert (manifest["seed"], manifest["n"], manifest["shape"]) == (0, N_CASES, list(SMALL_SHAPE))
    assert manifest["labels"] == {str(code): name for code, name in LABELS.items()}
    assert [case["phase"] for case in manifest["cases"]] == [PHASES[i % 3] for i in range(N_CASES)]
    for case in manifest["cases"]:
        assert 8 <= case["noise_hu"] <= 25 and len(case["spacing_mm"]) == 3


def test_existing_files_need_overwrite(tmp_path, capsys):
    args = ["--out", str(tmp_path), "--n", "1", "--seed", "4", "--shape", "32", "32", "16"]
    assert phantoms_main(args) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("case000: 32x32x16 LPS") and any("liver" in line for line in printed)
    before = _files(tmp_path)
    with pytest.raises(DataError, match="exists"):
        make_abdominal_phantoms(tmp_path, 1, seed=5, shape=(32, 32, 16))
    assert phantoms_main(args[:5] + ["5", "--shape", "32", "32", "16"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--overwrite" in error
    assert _files(tmp_path) == before
    assert phantoms_main(args[:5] + ["5", "--shape", "32", "32", "16", "--overwrite"]) == 0
    assert _files(tmp_path)["case000_CT.nii.gz"] != before["case000_CT.nii.gz"]


def test_bad_arguments_are_user_errors(tmp_path):
    with pytest.raises(DataError, match="--n"):
        make_abdominal_phantoms(tmp_path, 0, seed=0)
    with pytest.raises(DataError, match="--shape"):
        make_abdominal_phantoms(tmp_path, 1, seed=0, shape=(8, 64, 32))
    with pytest.raises(DataError, match="orientations"):
        make_abdominal_phantoms(tmp_path, 1, seed=0, shape=SMALL_SHAPE, orientations=("RPI",))
