"""`make demo` (demos/abdominal_ct/run_demo.py), smoke-sized: 5 tiny phantoms, 2 iterations."""

import contextlib
import csv
import importlib.util
import io
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

DEMO = next(folder / "demos" / "abdominal_ct" / "run_demo.py" for folder in Path(__file__).resolve().parents
            if (folder / "demos" / "abdominal_ct" / "run_demo.py").exists())


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("abdominal_demo", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run(demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("abdominal")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = demo.main(["--out", str(out), "--n", "5", "--shape", "48", "48", "24",
                            "--window", "32", "--max_iter", "2", "--batch_size", "1"])
    print(printed.getvalue())   # shown when a test fails
    return status, out, printed.getvalue()


def test_the_demo_runs_every_step_and_prints_the_table(run):
    status, out, text = run
    assert status == 0
    assert "CPU-sized schedule" in text and "144^3" in text and "32^3" in text
    for organ in ("spleen", "left kidney", "gallbladder", "esophagus", "liver", "stomach",
                  "pancreas", "duodenum"):
        assert organ in text
    assert "0.95" in text and "0.63" in text   # the paper's spleen and duodenum
    rows = list(csv.DictReader((out / "model" / "evaluation" / "evaluation.csv").open()))
    assert {row["label"] for row in rows} == {"1", "3", "4", "5", "6", "7", "11", "14"}
    assert {"dice", "hausdorff95", "average_distance"} <= set(rows[0])
    report = out / "model" / "report" / "index.html"
    assert report.is_file() and "report:" in text and str(report) in text


def test_outputs_lie_on_the_ct_grid_and_are_background_outside_the_crop_box(run):
    _, out, _ = run
    boxes = {row["id"]: row for row in csv.DictReader((out / "data" / "cropping.csv").open())}
    outputs = sorted((out / "model" / "segmentation").glob("*_niftynet_out.nii.gz"))
    assert outputs
    for path in outputs:
        case = path.name.split("_")[0]
        seg, ct = nib.load(path), nib.load(out / "data" / f"{case}_CT.nii.gz")
        assert seg.shape == ct.shape
        np.testing.assert_allclose(seg.affine, ct.affine, atol=1e-6)
        box = boxes[case]
        inside = np.zeros(ct.shape, bool)
        inside[int(box["extent_left"]):int(box["extent_right"]),
               int(box["extent_ant"]):int(box["extent_post"]),
               int(box["extent_inf"]):int(box["extent_sup"])] = True
        labels = np.asarray(seg.dataobj)
        assert not labels[~inside].any()
        assert set(np.unique(labels).tolist()) <= {0, 1, 3, 4, 5, 6, 7, 11, 14}


def test_a_ct_stored_in_another_orientation_gets_the_same_segmentation(run, demo, tmp_path):
    """Independently made CTs come in other storage orientations: the config reorients
    exactly (axcodes), so the same CT stored transposed and flipped is segmented the same,
    each output on its own file's grid."""
    from niftykit.cli import main

    _, out, _ = run
    args = demo._arguments(["--out", str(out), "--n", "5", "--shape", "48", "48", "24",
                            "--window", "32", "--max_iter", "2", "--batch_size", "1"])
    no_boxes = ["--set", "inputs.ct.crop_box_file=", "--set", "inputs.label.crop_box_file=",
                "--set", "segmentation.output_prob=true"]  # probabilities: a 2-iteration net varies
    ct = nib.load(sorted((out / "data").glob("case*_CT.nii.gz"))[0])
    ornt = np.array([[1, -1], [0, 1], [2, -1]])  # stored axes: y flipped, x, z flipped
    other = tmp_path / "other"
    other.mkdir()
    nib.save(ct, other / "caseA_CT.nii.gz")
    nib.save(ct.as_reoriented(ornt), other / "caseB_CT.nii.gz")
    assert main(["infer", "-c", str(demo.CONFIG), *demo._overrides(args), *no_boxes,
                 "--input", str(other), "--out", str(tmp_path / "seg")]) == 0
    seg_a, seg_b = (nib.load(next((tmp_path / "seg").glob(f"case{x}_*.nii.gz"))) for x in "AB")
    stored_b = nib.load(other / "caseB_CT.nii.gz")
    assert seg_a.shape[:3] == ct.shape and seg_b.shape[:3] == stored_b.shape
    assert np.asarray(seg_a.dataobj)[..., 0].std() > 1e-4  # not a constant map
    np.testing.assert_allclose(seg_b.affine, stored_b.affine, atol=1e-6)
    io = nib.orientations.io_orientation
    back = seg_b.as_reoriented(nib.orientations.ornt_transform(io(seg_b.affine), io(seg_a.affine)))
    np.testing.assert_allclose(back.affine, seg_a.affine, atol=1e-6)
    np.testing.assert_allclose(np.asarray(back.dataobj), np.asarray(seg_a.dataobj), atol=1e-6)
