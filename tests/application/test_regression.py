"""RegressionApplication end to end through the CLI on generated 16^3 volumes.

Images to images: the target is the input smoothed by a Gaussian (sigma 1 voxel), a
near-linear map that a 2-level U-Net fits in 100 iterations. Images to values: the target
is each image's level (its mean intensity, 0.5-2.0, under N(0, 0.3) noise).
"""

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from niftykit.cli import main
from niftykit.data.shapes import shapes_affine
from niftykit.io import write_image

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "regression.yaml"
SHAPE = (16, 16, 16)
VALUES = ("--set", "network.name=regression_head", "--set", "network.window_sampling=resize",
          "--set", ("network.params={encoder: resnet, encoder_params: {n_features: [8, 16], "
                    "n_blocks_per_resolution: 1, block: basic, norm: none}}"),
          "--set", "regression.weight=[]")


def make_smoothing(folder, n=6, seed=0):
    """``case<i>_image``, ``_target`` (the image smoothed) and ``_weight`` (ones) NIfTI files."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        image = rng.normal(0.0, 1.0, SHAPE).astype(np.float32)
        target = ndimage.gaussian_filter(image, 1.0).astype(np.float32)
        for kind, array in (("image", image), ("target", target),
                            ("weight", np.ones(SHAPE, np.float32))):
            write_image(array, shapes_affine(), folder / f"case{i:02d}_{kind}.nii.gz")


def make_levels(folder, n=12, seed=0):
    """``case<i>_image`` at a random level, and ``targets.csv`` (with a header) of the levels."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        level = rng.uniform(0.5, 2.0)
        image = (level + rng.normal(0.0, 0.3, SHAPE)).astype(np.float32)
        write_image(image, shapes_affine(), folder / f"case{i:02d}_image.nii.gz")
        rows.append((f"case{i:02d}", f"{level:.4f}"))
    with (folder / "targets.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([("subject_id", "level"), *rows])
    return dict(rows)


def args(data, model, *extra):
    sources = [f"--set=inputs.{name}.path_to_search={data}"
               for name in ("image", "target", "weight")]
    return ["-c", str(CONFIG), *sources, "--set", f"system.model_dir={model}", *extra]


def value_args(data, model, *extra):
    return args(data, model, "--set", f"inputs.target.csv_data_file={data / 'targets.csv'}",
                *VALUES, *extra)


def read_rows(path):
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """The config (100 iterations, weight map, loss_border) with reorientation and whitening."""
    root = tmp_path_factory.mktemp("regression_images")
    data, model = root / "data", root / "model"
    data.mkdir()
    make_smoothing(data)
    extra = ("--set", "inputs.image.axcodes=[L,P,S]", "--set", "network.whitening=true")
    for command in ("train", "infer", "evaluate"):
        assert main([command, *args(data, model, *extra)]) == 0, command
    return data, model


def test_image_outputs_lie_on_the_input_grid(images):
    data, model = images
    inferred = list(csv.reader((model / "regression" / "inferred.csv").open()))
    split = dict(csv.reader((model / "dataset_split.csv").open()))
    assert [s for s, _ in inferred] == sorted(s for s, p in split.items() if p == "inference")
    for subject, path in inferred:
        assert Path(path).name == f"{subject}_regressed.nii.gz"
        out, source = nib.load(path), nib.load(data / f"{subject}_image.nii.gz")
        assert out.shape == source.shape and out.get_data_dtype() == np.float32
        np.testing.assert_allclose(out.affine, source.affine, atol=1e-6)


def test_image_regression_beats_the_mean(images):
    _, model = images
    table = read_rows(model / "evaluation" / "evaluation.csv")
    assert list(table[0]) == ["subject_id", "mse", "rmse", "mae", "r2"]
    for row in table:
        assert float(row["rmse"]) == pytest.approx(np.sqrt(float(row["mse"])), rel=1e-6)
    # r2 = 0 is predicting each subject's mean target; the run reaches about 0.6 (the
    # outermost voxels, outside the loss_border-cropped loss, are the worst)
    assert np.mean([float(row["r2"]) for row in table]) > 0.2, table


@pytest.fixture(scope="module")
def values(tmp_path_factory):
    root = tmp_path_factory.mktemp("regression_values")
    data, model = root / "data", root / "model"
    data.mkdir()
    levels = make_levels(data)
    for command in ("train", "infer", "evaluate"):
        assert main([command, *value_args(data, model)]) == 0, command
    return data, model, levels


def test_value_outputs_are_one_csv_per_subject(values):
    _, model, _ = values
    inferred = list(csv.reader((model / "regression" / "inferred.csv").open()))
    assert len(inferred) >= 4
    for subject, path in inferred:
        (row,) = read_rows(path)
        assert list(row) == ["subject_id", "level"] and row["subject_id"] == subject
        assert np.isfinite(float(row["level"]))


def test_value_regression_beats_the_mean(values):
    _, model, levels = values
    table = read_rows(model / "evaluation" / "evaluation.csv")
    assert list(table[0]) == ["subject_id", "level_reference", "level_predicted", "level_error"]
    for row in table:
        assert float(row["level_reference"]) == pytest.approx(float(levels[row["subject_id"]]))
    (summary,) = read_rows(model / "evaluation" / "evaluation_summary.csv")
    assert summary["column"] == "level" and int(summary["n_subjects"]) == len(table)
    # the levels spread over 0.5-2.0 (std 0.43); the run reaches an error under 0.01
    assert float(summary["mae"]) < 0.15 and float(summary["r2"]) > 0.5, summary


def _shifted_target(data):
    write_image(np.zeros(SHAPE, np.float32), shapes_affine() @ np.diag([1, 1, 1.1, 1]),
                data / "case01_target.nii.gz", overwrite=True)


def _missing_row(data):
    (data / "targets.csv").write_text("case00,1.0\ncase02,1.5\n")


@pytest.mark.parametrize("kind, damage, extra, expected", [
    ("images", _shifted_target, (), ["case01_target.nii.gz"]),
    ("values", _missing_row, (), ["targets.csv has no row for subject 'case01'"]),
    ("images", None, ("--set", "network.name=resnet"),
     ["[network] name: 'resnet'", "a voxel-wise network"]),
    ("images", None, ("--set", "training.noise_std=[0.1,0.2]"),
     ["[training] noise_std", "regression of images"]),
    ("images", None, ("--set", "training.loss_type=GDSC"),
     ["[training] loss_type: 'GDSC' is not a regression loss"]),
])
def test_bad_targets_are_one_line_errors(tmp_path, capsys, kind, damage, extra, expected):
    data = tmp_path / "data"
    data.mkdir()
    (make_smoothing if kind == "images" else make_levels)(data, n=3)
    if damage is not None:
        damage(data)
    make = args if kind == "images" else value_args
    capsys.readouterr()
    assert main(["train", *make(data, tmp_path / "model", "--max_iter", "1", "--set",
                                "training.exclude_fraction_for_inference=0", *extra)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for text in expected:
        assert text in err[0], err[0]
