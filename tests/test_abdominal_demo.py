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
