"""Multi-view (2.5-D) and multi-scale sampling end to end, through the CLI and the shipped configs.

The nodule set (niftykit/data/nodules.py) holds round nodules and vessels that are
identical in the axial plane through the centre: the SINGLE (axial) classifier is at
chance by construction, the ALL (three views) one sees the vessels' length.
"""

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from niftykit.cli import main
from niftykit.data import make_nodules, make_shapes
from niftykit.data.nodules import nodule_volume

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ITERATIONS = "40"


def args(config, data, model, *extra):
    return ["-c", str(CONFIGS / config), "--set", f"inputs.image.path_to_search={data}",
            "--set", f"inputs.label.csv_data_file={data / 'labels.csv'}",
            "--set", f"system.model_dir={model}", *extra]


def read_rows(path):
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))


def run_config(config, data, model, *extra):
    """train, infer, evaluate; returns the evaluation rows."""
    for command in ("train", "infer", "evaluate"):
        assert main([command, *args(config, data, model, *extra)]) == 0, (config, command)
    return read_rows(model / "evaluation" / "evaluation.csv")


@pytest.fixture(scope="module")
def nodules(tmp_path_factory):
    data = tmp_path_factory.mktemp("nodules")
    return data, dict(make_nodules(data, n=24, seed=0))


@pytest.fixture(scope="module")
def single_and_all(nodules, tmp_path_factory):
    data, _ = nodules
    root = tmp_path_factory.mktemp("views")
    return {view: (root / view, run_config(f"method_multiview_{view}.yaml", data, root / view,
                                           "--max_iter", ITERATIONS))
            for view in ("single", "all")}


def accuracy(rows):
    return float(np.mean([int(row["correct"]) for row in rows]))


def test_nodules_and_vessels_look_alike_only_in_the_axial_plane():
    nodule, vessel = (nodule_volume(np.random.default_rng(1), label, noise=0.0) for label in (0, 1))
    np.testing.assert_array_equal(nodule[:, :, 12], vessel[:, :, 12])
    assert np.abs(nodule[:, 12] - vessel[:, 12]).max() > 0.9
    assert np.abs(nodule[12] - vessel[12]).max() > 0.9


def test_single_and_all_write_class_csvs_on_one_split(single_and_all, nodules):
    _, labels = nodules
    splits = []
    for view, (model, rows) in single_and_all.items():
        inferred = list(csv.reader((model / "classification" / "inferred.csv").open()))
        assert len(inferred) == len(rows) >= 6
        for subject, path in inferred:
            (row,) = read_rows(path)
            assert list(row) == ["subject_id", "label", "prob_0", "prob_1"] and row["subject_id"] == subject
            assert float(row["prob_0"]) + float(row["prob_1"]) == pytest.approx(1.0, abs=1e-4)
        assert all(int(row["reference"]) == labels[row["subject_id"]] for row in rows)
        splits.append((model / "dataset_split.csv").read_text())
    assert splits[0] == splits[1]  # the comparison is on the same held-out subjects


def test_all_views_beat_the_single_axial_view(single_and_all):
    """Seen with data and system seeds 0-4 (24 subjects, 9 held out, 40 iterations): ALL
    1.0, 1.0, 0.89, 1.0, 1.0; SINGLE 0.33, 0.33, 0.33, 0.44, 0.44 (its axial views of the
    two classes are identical, so it is at chance)."""
    single, every = (accuracy(single_and_all[v][1]) for v in ("single", "all"))
    print(f"\nheld-out accuracy: SINGLE {single:.3f}, ALL {every:.3f}")
    assert every >= 0.85 and every > single


def test_oblique_views_and_random_centres(nodules, tmp_path):
    """Nine views (three orthogonal, six rotated about z) from random centres: 2 iterations."""
    data, _ = nodules
    extra = ("--max_iter", "2", "--set", "network.oblique_views=6",
             "--set", "network.centre_sampling=uniform", "--set", "inference.tta=flip")
    rows = run_config("method_multiview_all.yaml", data, tmp_path, *extra)
    assert len(rows) >= 6 and list(rows[0])[:4] == ["subject_id", "reference", "predicted", "correct"]


def test_multiscale_classification(nodules, tmp_path):
    data, _ = nodules
    rows = run_config("method_multiscale.yaml", data, tmp_path / "centre", "--max_iter", "20")
    assert len(rows) >= 6 and {row["predicted"] for row in rows} <= {"0", "1"}
    # random centres: inference averages a grid of windows, each with its context
    extra = ("--max_iter", "2", "--set", "network.centre_sampling=uniform",
             "--set", "network.multiscale_sizes=[[8,8,8],[16,16,16]]")
    assert len(run_config("method_multiscale.yaml", data, tmp_path / "grid", *extra)) == len(rows)


def test_multiscale_segmentation_trains(tmp_path, config_args, capsys):
    """Labels from the finest window, balanced centres; inference cuts the same
    multi-scale windows on its grid and writes labels on the input's grid."""
    data = tmp_path / "data"
    make_shapes(data, n_subjects=4, shape=(16, 16, 16), seed=1)
    extra = ("--max_iter", "2", "--set", "training.validation_every_n=-1",
             "--set", "network.window_sampling=multiscale", "--set", "network.centre_sampling=balanced",
             "--set", "network.multiscale_sizes=[[8,8,8],[16,16,16],[24,24,24]]",
             "--set", "inputs.image.spatial_window_size=[8,8,8]",
             "--set", "inputs.label.spatial_window_size=[8,8,8]",
             "--set", "inference.spatial_window_size=[8,8,8]")
    assert main(["train", *config_args(data, tmp_path / "model", *extra)]) == 0
    assert "image': [8, 8, 8, 3]" in capsys.readouterr().out
    assert main(["infer", *config_args(data, tmp_path / "model", *extra)]) == 0
    outputs = sorted((tmp_path / "model" / "segmentation").glob("*.nii.gz"))
    assert outputs
    for output in outputs:
        subject = output.name.split("_niftynet_out")[0]
        image = nib.load(next(data.glob(f"{subject}*image.nii.gz")))
        seg = nib.load(output)
        assert seg.shape[:3] == image.shape[:3]
        np.testing.assert_allclose(seg.affine, image.affine, atol=1e-5)
    capsys.readouterr()
    flips = ("--set", "training.random_flipping_axes=[0]")
    assert main(["train", *config_args(data, tmp_path / "flip", *extra, *flips)]) == 2
    assert "does not augment yet" in capsys.readouterr().err
    views = ("--set", "network.window_sampling=multiview")
    assert main(["train", *config_args(data, tmp_path / "views", *extra, *views)]) == 2
    assert "multiview (2-D views stacked as channels) is for classification" in capsys.readouterr().err
