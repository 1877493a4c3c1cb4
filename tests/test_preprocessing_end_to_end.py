"""Training and inference through the CLI with the whole I/O layer switched on:
reorientation, resampling, Nyúl + whitening, label codes mapped and mapped back,
padding and augmentation; outputs on the input's exact grid with the input's codes."""

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from niftykit.cli import main
from niftykit.data import make_shapes

CODES = (0, 3, 7)


def _recode(data: Path) -> None:
    """Labels 0/1/2 -> 0/3/7, as in data sets whose codes are not 0..K-1."""
    for path in data.glob("*_label.nii.gz"):
        image = nib.load(path)
        codes = np.asarray(CODES, np.uint8)[np.asarray(image.dataobj)]
        nib.save(nib.Nifti1Image(codes, image.affine, image.header), path)


@pytest.fixture(scope="session")
def args(config_args):
    return lambda data, model, *extra: config_args(data, model, *extra,
                                                   config="quickstart_full_io.yaml")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, args):
    root = tmp_path_factory.mktemp("prep")
    data, model = root / "data", root / "model"
    make_shapes(data, n_subjects=10, shape=(24, 24, 24), seed=3)
    _recode(data)
    assert main(["train", *args(data, model, "--validation_every_n", "-1")]) == 0
    return data, model


def test_training_learns_and_saves_the_landmarks_and_label_codes(trained):
    _, model = trained
    lines = (model / "histogram_ref_file.txt").read_text().splitlines()
    assert any(line.startswith("image ") for line in lines)
    assert "label_label-from 0 3 7" in lines
    assert "label_label-to 0 1 2" in lines


def test_outputs_lie_on_the_input_grid_with_the_input_codes(trained, args):
    data, model = trained
    assert main(["infer", *args(data, model)]) == 0
    rows = list(csv.reader((model / "segmentation" / "inferred.csv").open()))
    assert rows
    for subject, path in rows:
        out, source = nib.load(path), nib.load(data / f"{subject}_label.nii.gz")
        assert out.shape == source.shape
        np.testing.assert_allclose(out.affine, source.affine, atol=1e-6)
        assert set(np.unique(np.asarray(out.dataobj)).tolist()) <= set(CODES)
    # learnt through every transform and back: objects found where they are (both codes
    # together; telling the two apart is the quickstart test's job)
    for subject, path in rows:
        out = np.asarray(nib.load(path).dataobj) > 0
        truth = np.asarray(nib.load(data / f"{subject}_label.nii.gz").dataobj) > 0
        assert 2 * (out & truth).sum() / (out.sum() + truth.sum()) > 0.8, subject
    assert main(["evaluate", *args(data, model)]) == 0
    table = list(csv.DictReader((model / "evaluation" / "evaluation.csv").open()))
    assert sorted({row["label"] for row in table}) == ["3", "7"]


def test_landmarks_for_other_modalities_are_an_error(trained, tmp_path, capsys, args):
    data, model = trained
    ref = tmp_path / "other.txt"
    ref.write_text("FLAIR " + " ".join(str(v) for v in np.linspace(0, 100, 13)) + "\n")
    assert main(["infer", *args(data, model, "--set", f"network.histogram_ref_file={ref}",
                                  "--set", f"inference.save_seg_dir={tmp_path / 'out'}")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other.txt" in err[0]
