"""`niftykit prepare-abdominal` on phantoms laid out like the public files.

Four phantom cases become two TCIA-style DICOM series (``PANCREAS_<NNNN>/``) and two
BTCV-style NIfTI images (``RawData/*/img/img<NNNN>.nii.gz``, one stored in another
orientation than its label), with Zenodo-style labels (``label_tcia_multiorgan/label<NNNN>``,
``label_btcv_multiorgan/label<NNNN>``) and a ``cropping.csv``; the prepared cases must
give back the phantoms' arrays and affines.
"""

import csv
import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from niftykit.cli import main
from niftykit.data.abdomen import CROP_COLUMNS, make_abdominal_phantoms
from niftykit.io import check_same_grid, read_image

sitk = pytest.importorskip("SimpleITK")

#: phantom case -> (publisher, original id, image kind); phantom storage: LPS, RAS, LAS, LPI
LAYOUT = {"case000": ("TCIA", 1, "dicom"), "case001": ("BTCV", 2, "nifti"),
          "case002": ("TCIA", 3, "dicom"), "case003": ("BTCV", 5, "nifti-canonical")}


def write_dicom_series(source, folder):
    """The int16 NIfTI ``source`` as a DICOM series, one file per slice (LPS geometry)."""
    image = nib.load(str(source))
    array = np.asarray(image.dataobj).astype(np.int16)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ image.affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    directions = lps[:3, :3] / spacing
    folder.mkdir(parents=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    uid = "1.2.826.0.1.3680043.2.1125.7"
    for k in range(array.shape[2]):
        cut = sitk.GetImageFromArray(array[:, :, k].T[None])  # sitk size (x, y, 1)
        position = lps[:3, :3] @ [0, 0, k] + lps[:3, 3]
        cut.SetSpacing([float(s) for s in spacing])
        cut.SetOrigin([float(p) for p in position])
        cut.SetDirection([float(d) for d in directions.flatten()])
        tags = {"0008|0060": "CT", "0020|000d": f"{uid}.1", "0020|000e": f"{uid}.2",
                "0008|0018": f"{uid}.3.{k + 1}", "0020|0013": str(k + 1),
                "0020|0037": "\\".join(f"{v:.10f}" for v in (*directions[:, 0], *directions[:, 1])),
                "0020|0032": "\\".join(f"{v:.6f}" for v in position),
                "0028|1052": "0", "0028|1053": "1"}
        for tag, value in tags.items():
            cut.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"1-{k + 1:03d}.dcm"))
        writer.Execute(cut)


@pytest.fixture(scope="module")
def public(tmp_path_factory):
    """Phantoms, and the same cases laid out as the public downloads."""
    root = tmp_path_factory.mktemp("public")
    manifest = make_abdominal_phantoms(root / "phantoms", 4, seed=5, shape=(24, 24, 16))
    images, labels = root / "images", root / "zenodo"
    crops = []
    for case in manifest["cases"]:
        publisher, number, kind = LAYOUT[case["id"]]
        ct, label = root / "phantoms" / case["image"], root / "phantoms" / case["label"]
        folder = labels / f"label_{publisher.lower()}_multiorgan"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(label, folder / f"label{number:04d}.nii.gz")
        if kind == "dicom":
            write_dicom_series(ct, images / "Pancreas-CT" / f"PANCREAS_{number:04d}" / "1.2" / "1.2.3")
        else:
            target = images / "RawData" / ("Training" if number < 4 else "Testing") / "img"
            target.mkdir(parents=True, exist_ok=True)
            stored = nib.load(str(ct))
            if kind == "nifti-canonical":  # the image in another orientation than its label
                stored = nib.as_closest_canonical(stored)
            nib.save(stored, str(target / f"img{number:04d}.nii.gz"))
        crops.append([case["id"].replace("case", "") + "x", publisher, str(number),
                      *case["crop"].values()])
    # BTCV labels carry more codes than the eight organs: 2 (right kidney), 8 (aorta)
    extra = labels / "label_btcv_multiorgan" / "label0002.nii.gz"
    label = nib.load(str(extra))
    codes = np.asarray(label.dataobj).copy()
    codes[:2, :2, :2] = 2
    codes[-1, -1, -1] = 8
    nib.save(nib.Nifti1Image(codes, label.affine, label.header), str(extra))
    with (root / "cropping.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([CROP_COLUMNS, *crops])
    return root, manifest


def _args(root, out, *extra):
    return ["prepare-abdominal", "--images", str(root / "images"), "--labels",
            str(root / "zenodo"), "--crops", str(root / "cropping.csv"), "--out", str(out), *extra]


def test_prepared_cases_equal_the_phantoms(public, tmp_path):
    root, manifest = public
    out = tmp_path / "prepared"
    assert main(_args(root, out)) == 0
    for case in manifest["cases"]:
        original_ct = nib.load(str(root / "phantoms" / case["image"]))
        original_label = nib.load(str(root / "phantoms" / case["label"]))
        ct = nib.load(str(out / f"{case['id']}_CT.nii.gz"))
        label = nib.load(str(out / f"{case['id']}_Label.nii.gz"))
        assert ct.get_data_dtype() == np.int16 and label.get_data_dtype() == np.uint8
        np.testing.assert_array_equal(np.asarray(ct.dataobj), np.asarray(original_ct.dataobj))
        expected = np.asarray(original_label.dataobj)
        np.testing.assert_array_equal(np.asarray(label.dataobj), expected)
        for image in (ct, label):
            np.testing.assert_allclose(image.affine, original_ct.affine, atol=1e-4)
        check_same_grid(read_image(out / f"{case['id']}_CT.nii.gz"),
                        read_image(out / f"{case['id']}_Label.nii.gz", "label"))
    rows = list(csv.DictReader((out / "cropping.csv").open()))
    assert [r["id"] for r in rows] == ["case000", "case001", "case002", "case003"]
    assert [r["original_id"] for r in rows] == ["1", "2", "3", "5"]
    for row, case in zip(rows, manifest["cases"]):
        assert [int(row[c]) for c in CROP_COLUMNS[3:]] == list(case["crop"].values())
    records = json.loads((out / "prepared.json").read_text(encoding="utf-8"))["cases"]
    grids = {r["id"]: r["grid"] for r in records}
    # LAS/LPI storage: DICOM slices sorted along the normal come back reversed
    assert grids == {"case000": "same", "case001": "same", "case002": "reoriented",
                     "case003": "reoriented"}
    assert {r["id"]: r["other_codes_zeroed"] for r in records}["case001"] == 9
    assert all(r["labelled_inside_box"] == 1.0 for r in records)


def test_missing_files_and_naming_rules(public, tmp_path, capsys):
    root, _ = public
    moved = tmp_path / "zenodo"
    shutil.copytree(root / "zenodo", moved)
    (moved / "label_tcia_multiorgan" / "label0003.nii.gz").rename(
        moved / "label_tcia_multiorgan" / "seg-3.nii.gz")
    args = ["prepare-abdominal", "--images", str(root / "images"), "--labels", str(moved),
            "--crops", str(root / "cropping.csv")]
    assert main([*args, "--out", str(tmp_path / "a")]) == 2
    assert "no file found for tcia 0003 (label)" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "b"), "--skip-missing"]) == 0
    # case ids follow the cropping.csv rows: skipping one does not renumber the others
    assert not (tmp_path / "b" / "case002_CT.nii.gz").exists()
    assert (tmp_path / "b" / "case003_CT.nii.gz").exists()
    assert len(list(csv.reader((tmp_path / "b" / "cropping.csv").open()))) == 4
    rule = r"tcia.label=label_tcia[^/]*/(?:label|seg-)(\d+)\.nii\.gz$"
    assert main([*args, "--out", str(tmp_path / "c"), "--match", rule]) == 0
    assert (tmp_path / "c" / "case002_Label.nii.gz").exists()
    assert main([*args, "--out", str(tmp_path / "c"), "--match", rule]) == 2
    assert "exists" in capsys.readouterr().err


def test_keep_all_codes_and_label_folders_given_themselves(public, tmp_path):
    root, _ = public
    out = tmp_path / "all"
    labels = [str(root / "zenodo" / f"label_{s}_multiorgan") for s in ("tcia", "btcv")]
    assert main(["prepare-abdominal", "--images", str(root / "images"), "--labels", *labels,
                 "--crops", str(root / "cropping.csv"), "--out", str(out),
                 "--keep-all-codes"]) == 0
    assert len(list(out.glob("case*_Label.nii.gz"))) == 4
    codes = np.unique(np.asarray(nib.load(str(out / "case001_Label.nii.gz")).dataobj))
    assert {2, 8} <= set(codes.tolist())
