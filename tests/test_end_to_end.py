"""The first slice end to end through the real CLI: train -> infer -> evaluate on 24^3 volumes."""

import csv

import nibabel as nib
import numpy as np
import pytest

from niftykit.cli import main
from niftykit.data import make_shapes



@pytest.fixture(scope="module")
def run(tmp_path_factory, config_args):
    """Train 300 iterations on 10 generated subjects (6 training, 2 validation, 2 inference)."""
    root = tmp_path_factory.mktemp("slice")
    data, model = root / "data", root / "model"
    make_shapes(data, n_subjects=10, shape=(24, 24, 24), seed=1)
    status = main(["train", *config_args(data, model, "--max_iter", "300", "--save_every_n", "100",
                                   "--validation_every_n", "100")])
    assert status == 0
    return data, model


def test_train_writes_checkpoints_split_and_logs(run):
    data, model = run
    assert (model / "models" / "model.ckpt-300.index").exists()
    assert (model / "models" / "model.ckpt-100.index").exists()
    rows = list(csv.reader((model / "dataset_split.csv").open()))
    phases = [phase for _, phase in rows]
    # 10 subjects: 0.2 * 10 = 2 validation, 2 inference, 6 training
    assert sorted(phases) == ["inference"] * 2 + ["training"] * 6 + ["validation"] * 2
    assert any((model / "logs" / "training").iterdir())


def test_train_refuses_to_overwrite_then_resumes(run, capsys, config_args):
    data, model = run
    assert main(["train", *config_args(data, model, "--max_iter", "302")]) == 2
    assert "already has checkpoints" in capsys.readouterr().err
    assert main(["train", *config_args(data, model, "--starting_iter", "300", "--max_iter", "302")]) == 0
    assert (model / "models" / "model.ckpt-302.index").exists()


def test_infer_writes_on_the_input_grid_and_evaluate_scores(run, capsys, config_args):
    data, model = run
    assert main(["infer", *config_args(data, model)]) == 0
    index = model / "segmentation" / "inferred.csv"
    inferred = list(csv.reader(index.open()))
    assert len(inferred) == 2
    for subject, path in inferred:
        out = nib.load(path)
        source = nib.load(data / f"{subject}_image.nii.gz")
        assert out.shape == source.shape
        np.testing.assert_allclose(out.affine, source.affine, atol=1e-6)
        np.testing.assert_allclose(out.header.get_sform(), source.affine, atol=1e-6)
        values = np.unique(np.asarray(out.dataobj))
        assert set(values.tolist()) <= {0, 1, 2}
    # a second infer without --overwrite stops, with the file named
    assert main(["infer", *config_args(data, model)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["evaluate", *config_args(data, model)]) == 0
    table = list(csv.DictReader((model / "evaluation" / "evaluation.csv").open()))
    assert [row["label"] for row in table] == ["1", "2"] * 2
    assert set(table[0]) == {"subject_id", "label", "dice", "hausdorff95", "average_distance"}
    assert main(["evaluate", *config_args(data, model, "--overwrite",
                                          "--set", "evaluation.evaluations=[dcie]")]) == 2
    assert "[evaluation] evaluations: unknown evaluation metric 'dcie'; did you mean 'dice'" \
        in capsys.readouterr().err
    # the slice learns: both objects are found on held-out subjects
    for label in ("1", "2"):
        scores = [float(row["dice"]) for row in table if row["label"] == label]
        assert np.mean(scores) > 0.7, (label, scores)


def test_bad_label_value_is_a_one_line_error(tmp_path, capsys, config_args):
    data = tmp_path / "data"
    make_shapes(data, n_subjects=2, shape=(16, 16, 16))
    label = nib.load(data / "case01_label.nii.gz")
    array = np.asarray(label.dataobj).copy()
    array[0, 0, 0] = 7
    nib.save(nib.Nifti1Image(array, label.affine), data / "case01_label.nii.gz")
    assert main(["train", *config_args(data, tmp_path / "model", "--max_iter", "2",
                                 "--validation_every_n", "-1",
                                 "--set", "training.exclude_fraction_for_validation=0",
                                 "--set", "training.exclude_fraction_for_inference=0")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "label value 7" in err[0] and "case01_label.nii.gz" in err[0] and "num_classes=3" in err[0]


def test_window_the_network_cannot_take(tmp_path, capsys, config_args):
    data = tmp_path / "data"
    make_shapes(data, n_subjects=2, shape=(16, 16, 16))
    assert main(["train", *config_args(data, tmp_path / "model", "--set",
                                 "inputs.image.spatial_window_size=[10,16,16]", "--set",
                                 "inputs.label.spatial_window_size=[10,16,16]")]) == 2
    err = capsys.readouterr().err
    assert "spatial_window_size" in err and "x=10 (try 8 or 12)" in err


def test_validation_without_validation_subjects_warns(tmp_path, capsys, config_args):
    data = tmp_path / "data"
    make_shapes(data, n_subjects=2, shape=(16, 16, 16))
    assert main(["train", *config_args(data, tmp_path / "model", "--max_iter", "2",
                                 "--set", "training.exclude_fraction_for_validation=0",
                                 "--set", "training.exclude_fraction_for_inference=0")]) == 0
    captured = capsys.readouterr()
    assert "niftykit: warning: training.validation_every_n is 100" in captured.err
    assert "training iter 2," in captured.out
