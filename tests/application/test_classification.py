"""ClassificationApplication end to end through the CLI on generated 16^3 volumes.

Class 1 images hold a bright ball (radius 3 voxels, +2.0) in N(0, 0.3) noise, class 0
images noise only: the ball shifts the image mean by about 0.06 against a noise of the
mean of 0.005, so a tiny ResNet separates them within a few dozen iterations.
"""

import csv
from pathlib import Path

import numpy as np
import pytest

from niftykit.cli import main
from niftykit.data.shapes import shapes_affine
from niftykit.io import write_image

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "classification.yaml"


def make_classes(folder, n=12, codes=(0, 1), label_images=False, seed=0, shape=(16, 16, 16)):
    """``case<i>_image.nii.gz`` and either ``labels.csv`` or ``case<i>_label.nii.gz``
    (one voxel); subject i has class ``codes[i % 2]``, the ball when that is the second."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1)
    rows = []
    for i in range(n):
        image = rng.normal(0.0, 0.3, shape).astype(np.float32)
        if i % 2:
            image[np.linalg.norm(grid - rng.uniform(4, 12, 3), axis=-1) <= 3] += 2.0
        write_image(image, shapes_affine(), folder / f"case{i:02d}_image.nii.gz")
        if label_images:
            write_image(np.full((1, 1, 1), codes[i % 2], np.uint8), shapes_affine(),
                        folder / f"case{i:02d}_label.nii.gz")
        rows.append((f"case{i:02d}", codes[i % 2]))
    if not label_images:
        with (folder / "labels.csv").open("w", newline="") as handle:
            csv.writer(handle).writerows(rows)
    return rows


def args(data, model, *extra):
    return ["-c", str(CONFIG), "--set", f"inputs.image.path_to_search={data}",
            "--set", f"inputs.label.csv_data_file={data / 'labels.csv'}",
            "--set", f"system.model_dir={model}", *extra]


def label_image_args(data, model, *extra):
    """The config with label images instead of the CSV."""
    return ["-c", str(CONFIG), "--set", f"inputs.image.path_to_search={data}",
            "--set", "inputs.label.csv_data_file=",
            "--set", f"inputs.label.path_to_search={data}",
            "--set", "inputs.label.filename_contains=[_label]",
            "--set", f"system.model_dir={model}", *extra]


def read_rows(path):
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Train the config (60 iterations) on 12 subjects, infer and evaluate the held-out ones."""
    root = tmp_path_factory.mktemp("classification")
    data, model = root / "data", root / "model"
    data.mkdir()
    labels = dict(make_classes(data))
    assert main(["train", *args(data, model)]) == 0
    assert main(["infer", *args(data, model)]) == 0
    return data, model, labels


def test_infer_writes_one_csv_per_subject(run):
    _, model, _ = run
    split = dict(csv.reader((model / "dataset_split.csv").open()))
    held_out = sorted(s for s, phase in split.items() if phase == "inference")
    inferred = list(csv.reader((model / "classification" / "inferred.csv").open()))
    assert [s for s, _ in inferred] == held_out and len(held_out) >= 4
    for subject, path in inferred:
        assert Path(path) == model / "classification" / f"{subject}_class.csv"
        (row,) = read_rows(path)
        assert list(row) == ["subject_id", "label", "prob_0", "prob_1"]
        assert row["subject_id"] == subject and row["label"] in ("0", "1")
        probs = [float(row["prob_0"]), float(row["prob_1"])]
        assert sum(probs) == pytest.approx(1.0, abs=1e-4)
        assert row["label"] == str(int(np.argmax(probs)))


def test_evaluate_scores_better_than_chance(run, capsys):
    data, model, labels = run
    capsys.readouterr()
    assert main(["evaluate", *args(data, model)]) == 0
    out = capsys.readouterr().out
    table = read_rows(model / "evaluation" / "evaluation.csv")
    assert list(table[0]) == ["subject_id", "reference", "predicted", "correct", "prob_0",
                              "prob_1"]
    assert all(int(row["reference"]) == labels[row["subject_id"]] for row in table)
    matrix = list(csv.reader((model / "evaluation" / "confusion_matrix.csv").open()))
    assert matrix[0] == ["reference\\predicted", "0", "1"]
    assert sum(int(v) for row in matrix[1:] for v in row[1:]) == len(table)
    assert "mean accuracy" in out and "mean roc_auc" in out
    # chance is 0.5; the run above separates the classes (loss < 0.01 by iteration 60):
    # at most one of the >= 4 held-out subjects may be wrong
    accuracy = np.mean([int(row["correct"]) for row in table])
    assert accuracy >= 0.75, table
    # a second evaluate without --overwrite stops
    assert main(["evaluate", *args(data, model)]) == 2
    assert "exists" in capsys.readouterr().err


def test_without_probabilities_roc_auc_is_left_out(run, capsys):
    data, model, _ = run
    extra = ("--set", "classification.output_prob=false", "--set", "inference.save_seg_dir=plain",
             "--set", "evaluation.save_csv_dir=plain_evaluation")
    assert main(["infer", *args(data, model, *extra)]) == 0
    for _, path in csv.reader((model / "plain" / "inferred.csv").open()):
        assert list(read_rows(path)[0]) == ["subject_id", "label"]
    # by default (no evaluation.evaluations) ROC AUC is left out
    assert main(["evaluate", *args(data, model, *extra, "--set", "evaluation.evaluations=[]")]) == 0
    assert "roc_auc: skipped" in capsys.readouterr().out
    assert list(read_rows(model / "plain_evaluation" / "evaluation.csv")[0]) == [
        "subject_id", "reference", "predicted", "correct"]
    # asked for by name (as the config does), it is an error
    assert main(["evaluate", *args(data, model, *extra, "--overwrite")]) == 2
    assert "roc_auc needs class probabilities" in capsys.readouterr().err
    assert main(["evaluate", *args(data, model, *extra, "--overwrite",
                                   "--set", "evaluation.evaluations=[dice]")]) == 2
    assert "evaluations: 'dice' is not a classification metric" in capsys.readouterr().err


def test_label_images_with_label_normalisation(tmp_path):
    """Codes 3 and 7 in one-voxel label images: learnt, mapped to 0..1 and back; random
    windows, flip test-time augmentation (2 iterations: format only); the split drawn at
    train time per class (exclude_fraction_for_inference 0.34 of 6: 3, with both codes)."""
    data, model = tmp_path / "data", tmp_path / "model"
    data.mkdir()
    codes = dict(make_classes(data, n=6, codes=(3, 7), label_images=True))
    extra = ("--set", "classification.label_normalisation=true", "--max_iter", "2",
             "--set", "training.stratify_split=true",
             "--set", "network.window_sampling=uniform",
             "--set", "inputs.image.spatial_window_size=[8,8,8]",
             "--set", "inference.spatial_window_size=[8,8,8]", "--set", "inference.tta=flip")
    for command in ("train", "infer", "evaluate"):
        assert main([command, *label_image_args(data, model, *extra)]) == 0, command
    ref = (model / "histogram_ref_file.txt").read_text()
    assert "label_label-from 3 7" in ref
    split = dict(csv.reader((model / "dataset_split.csv").open()))
    held = [codes[s] for s, phase in split.items() if phase == "inference"]
    assert len(held) == 3 and sorted(set(held)) == [3, 7]  # ceil(0.34 × 6), both codes
    inferred = list(csv.reader((model / "classification" / "inferred.csv").open()))
    for subject, path in inferred:
        (row,) = read_rows(path)
        assert list(row) == ["subject_id", "label", "prob_3", "prob_7"]
        assert row["label"] in ("3", "7")
    table = read_rows(model / "evaluation" / "evaluation.csv")
    assert {row["reference"] for row in table} <= {"3", "7"} and len(table) == len(inferred)


def _bad_csv_value(data):
    (data / "labels.csv").write_text("".join(
        f"case{i:02d},{5 if i == 3 else i % 2}\n" for i in range(4)))


def _missing_row(data):
    (data / "labels.csv").write_text("".join(f"case{i:02d},{i % 2}\n" for i in (0, 1, 2)))


def _non_constant_image(data):
    write_image(np.arange(8, dtype=np.uint8).reshape(2, 2, 2), shapes_affine(),
                data / "case03_label.nii.gz", overwrite=True)


@pytest.mark.parametrize("damage, images, expected", [
    (_bad_csv_value, False, ["label value 5", "labels.csv", "case03", "num_classes=2"]),
    (_missing_row, False, ["labels.csv has no row for subject 'case03'"]),
    (_non_constant_image, True, ["case03_label.nii.gz", "holds one value"]),
    (None, False, ["[network] name: 'unet'", "one vector per window"]),
])
def test_bad_labels_are_one_line_errors(tmp_path, capsys, damage, images, expected):
    data = tmp_path / "data"
    data.mkdir()
    make_classes(data, n=4, label_images=images)
    if damage is not None:
        damage(data)
    make = label_image_args if images else args
    extra = ["--max_iter", "1", "--set", "training.exclude_fraction_for_inference=0"]
    if damage is None:
        extra += ["--set", "network.name=unet", "--set", "network.params={n_features: [4, 8]}"]
    capsys.readouterr()
    assert main(["train", *make(data, tmp_path / "model", *extra)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for text in expected:
        assert text in err[0], err[0]

