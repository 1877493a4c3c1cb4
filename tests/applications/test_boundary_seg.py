"""Worked example (a), applications/boundary_seg.py, end to end through the CLI on 16^3 shapes."""

import csv

import nibabel as nib
import numpy as np
import pytest

from niftykit.data import make_shapes

CONFIG = "example_boundary_seg.yaml"


def params(weight):
    """``network.params`` of the config with another ``boundary_weight``."""
    return f"network.params={{n_features: [8, 16, 32], norm: instance, boundary_weight: {weight}}}"


def args(cli, data, model, *extra):
    return ["-c", cli.CONFIGS / CONFIG, "--set", f"inputs.image.path_to_search={data}",
            "--set", f"inputs.label.path_to_search={data}", "--set", f"system.model_dir={model}",
            *extra]


@pytest.fixture(scope="module")
def run(tmp_path_factory, cli):
    """30 iterations on 6 subjects (2 held out), then infer and evaluate."""
    root = tmp_path_factory.mktemp("boundary_seg")
    data, model = root / "data", root / "model"
    make_shapes(data, n_subjects=6, shape=(16, 16, 16), seed=2)
    status, log = cli.run(["train", *args(cli, data, model, "--max_iter", "30",
                                          "--set", "training.log_every_n=5")])
    assert status == 0, log
    for command in ("infer", "evaluate"):
        assert cli.run([command, *args(cli, data, model)])[0] == 0, command
    return data, model, cli.losses(log)


def test_the_loss_falls(run):
    _, _, losses = run
    assert len(losses) >= 6 and losses[-1] < losses[0], losses


def test_label_and_boundary_maps_lie_on_the_input_grid(run):
    data, model, _ = run
    inferred = list(csv.reader((model / "segmentation" / "inferred.csv").open()))
    assert len(inferred) == 2
    for subject, path in inferred:
        source = nib.load(data / f"{subject}_image.nii.gz")
        labels = nib.load(path)
        boundary = nib.load(path.replace(".nii.gz", "_boundary.nii.gz"))
        for out in (labels, boundary):
            assert out.shape == source.shape
            np.testing.assert_allclose(out.affine, source.affine, atol=1e-6)
        assert set(np.unique(np.asarray(labels.dataobj)).tolist()) <= {0, 1, 2}
        assert boundary.get_data_dtype() == np.float32
        values = np.asarray(boundary.dataobj)
        assert values.min() >= 0.0 and values.max() <= 1.0


def test_evaluation_scores_the_label_maps(run):
    _, model, _ = run
    rows = list(csv.DictReader((model / "evaluation" / "evaluation.csv").open()))
    assert [r["label"] for r in rows] == ["1", "2"] * 2
    assert all(0.0 <= float(r["dice"]) <= 1.0 for r in rows)


def test_boundary_map_is_the_shell_of_each_label():
    from applications.boundary_seg import boundary_map
    labels = np.zeros((1, 8, 8, 8, 1), np.uint8)
    labels[0, 2:6, 2:6, 2:6] = 1
    edges = np.asarray(boundary_map(labels))[0, ..., 0]
    # the two voxel layers either side of the cube's faces, nothing inside or far outside
    assert edges[2, 3, 3] == 1 and edges[1, 3, 3] == 1 and edges[3, 3, 3] == 0
    assert edges[0, 3, 3] == 0 and edges.sum() == 6 ** 3 - 2 ** 3


def test_network_has_one_more_channel_and_the_term_is_weighted(cli, tmp_path):
    from applications.boundary_seg import BoundarySegmentationApplication
    from niftykit.config import load_config
    overrides = [f"system.model_dir={tmp_path}"]
    apps = {w: BoundarySegmentationApplication(load_config(
        cli.CONFIGS / CONFIG, overrides + [params(w)])) for w in (0, 2)}
    network = apps[0].build_network()
    outputs = network(np.zeros((1, 16, 16, 16, 1), np.float32))
    assert outputs.shape == (1, 16, 16, 16, 4)
    labels = np.zeros((1, 16, 16, 16, 1), np.uint8)
    labels[0, 4:12, 4:12, 4:12] = 1
    batch = {"label": labels}
    plain, weighted = (float(apps[w].loss(outputs, batch)) for w in (0, 2))
    # an untrained boundary logit costs about log 2 nats per voxel
    assert weighted - plain == pytest.approx(2 * np.log(2), rel=0.5)


def test_a_bad_boundary_weight_is_a_one_line_error(cli, tmp_path, capsys):
    status, _ = cli.run(["train", *args(cli, tmp_path, tmp_path / "model",
                                        "--set", params(-1))])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[network] params: boundary_weight" in err[0], err
