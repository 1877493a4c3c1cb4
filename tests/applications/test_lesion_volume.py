"""Worked example (b), applications/lesion_volume.py, end to end through the CLI on 16^3 volumes."""

import csv
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from applications.lesion_volume import lesion_volume_ml, make_lesions

CONFIG = "example_lesion_volume.yaml"


def args(cli, data, model, *extra):
    return ["-c", cli.CONFIGS / CONFIG, "--set", f"inputs.image.path_to_search={data}",
            "--set", f"inputs.label.path_to_search={data}", "--set", f"system.model_dir={model}",
            *extra]


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def run(tmp_path_factory, cli):
    """80 iterations on 12 subjects (3 held out), then infer and evaluate."""
    root = tmp_path_factory.mktemp("lesion_volume")
    data, model = root / "data", root / "model"
    make_lesions(data, n_subjects=12, seed=1)
    status, log = cli.run(["train", *args(cli, data, model, "--max_iter", "80")])
    assert status == 0, log
    for command in ("infer", "evaluate"):
        assert cli.run([command, *args(cli, data, model)])[0] == 0, command
    return data, model, cli.losses(log)


def test_the_target_is_the_labelled_volume_in_ml(tmp_path):
    make_lesions(tmp_path, n_subjects=1, seed=3)
    label = nib.load(tmp_path / "case00_label.nii.gz")
    voxels = int(np.count_nonzero(np.asarray(label.dataobj)))
    voxel_mm3 = abs(np.linalg.det(label.affine[:3, :3]))
    assert voxel_mm3 == pytest.approx(1.0 * 1.2 * 1.5)
    assert lesion_volume_ml(tmp_path / "case00_label.nii.gz") == pytest.approx(
        voxels * voxel_mm3 / 1000)


def test_the_loss_falls(run):
    _, _, losses = run
    assert len(losses) >= 8 and np.mean(losses[-3:]) < 0.5 * np.mean(losses[:2]), losses


def test_one_csv_per_subject(run):
    _, model, _ = run
    inferred = list(csv.reader((model / "volumes" / "inferred.csv").open()))
    assert len(inferred) == 3
    for subject, path in inferred:
        assert path.endswith(f"{subject}_volume.csv")
        (row,) = rows(path)
        assert list(row) == ["subject_id", "volume_ml"] and row["subject_id"] == subject
        assert np.isfinite(float(row["volume_ml"]))


def test_evaluation_reports_mae_and_r2_against_the_label_volumes(run):
    data, model, _ = run
    table = rows(model / "evaluation" / "evaluation.csv")
    assert list(table[0]) == ["subject_id", "volume_ml_reference", "volume_ml_predicted",
                              "volume_ml_error"]
    for row in table:
        expected = lesion_volume_ml(data / f"{row['subject_id']}_label.nii.gz")
        assert float(row["volume_ml_reference"]) == pytest.approx(expected, rel=1e-4)
    (summary,) = rows(model / "evaluation" / "evaluation_summary.csv")
    assert list(summary) == ["column", "n_subjects", "mae", "rmse", "r2"]
    # volumes spread over 0.02-1 mL; 80 iterations come within about 0.05 mL
    assert float(summary["mae"]) < 0.2, summary


def test_python_m_niftykit_finds_the_applications_package(cli, tmp_path):
    """From the repository root, without PYTHONPATH, as the config's comment says to run it."""
    make_lesions(tmp_path / "data", n_subjects=4, seed=0)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-m", "niftykit", "split", *map(str, args(
            cli, tmp_path / "data", tmp_path / "model"))],
        cwd=cli.ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    split = dict(csv.reader((tmp_path / "model" / "dataset_split.csv").open()))
    assert sorted(split) == [f"case{i:02d}" for i in range(4)]
