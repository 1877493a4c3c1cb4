"""Every window sampler and aggregator through the CLI, on generated data: training runs,
inference writes on the input grid."""

import csv

import nibabel as nib
import numpy as np
import pytest

from niftykit.cli import main
from niftykit.data import make_shapes


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sampling") / "data"
    make_shapes(folder, n_subjects=4, shape=(20, 20, 20), seed=5)
    for path in folder.glob("*_label.nii.gz"):   # weighted sampling: objects 10x likelier
        label = nib.load(path)
        weights = np.where(np.asarray(label.dataobj) > 0, 10.0, 1.0).astype(np.float32)
        nib.save(nib.Nifti1Image(weights, label.affine), str(path).replace("_label", "_prob"))
    return folder


PROB = ["--set", "segmentation.sampler=prob"]


def _with_prob_source(tmp_path, data):
    """quickstart.yaml plus an input section for the sampling maps."""
    import yaml
    from pathlib import Path
    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" /
                             "quickstart.yaml").read_text(encoding="utf-8"))
    config["inputs"]["prob"] = {"path_to_search": str(data), "filename_contains": ["_prob"]}
    path = tmp_path / "weighted.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("sampling, extra", [
    ("uniform", []), ("balanced", []), ("weighted", PROB),
    ("resize", ["--set", "inputs.image.spatial_window_size=[16,16,16]",
                "--set", "inputs.label.spatial_window_size=[16,16,16]"]),
])
def test_each_sampler_trains_and_infers_on_the_input_grid(sampling, extra, data, tmp_path,
                                                           config_args):
    config = _with_prob_source(tmp_path, data) if extra is PROB else "quickstart.yaml"
    args = config_args(data, tmp_path / "model", "--set", f"network.window_sampling={sampling}",
                       "--set", "training.rotation_angle=[-10,10]", "--max_iter", "4",
                       "--validation_every_n", "-1", *extra, config=config)
    assert main(["train", *args]) == 0
    assert main(["infer", *args]) == 0
    rows = list(csv.reader((tmp_path / "model" / "segmentation" / "inferred.csv").open()))
    for subject, path in rows:
        out, source = nib.load(path), nib.load(data / f"{subject}_image.nii.gz")
        assert out.shape == source.shape
        np.testing.assert_allclose(out.affine, source.affine, atol=1e-6)


@pytest.mark.parametrize("aggregation, extra", [
    ("crop", ["--set", "inference.border=[2,2,2]", "--set", "inference.overlap=0"]),
    ("mean", []), ("gaussian", ["--set", "inference.tta=flip"]),
    ("gaussian", ["--set", "segmentation.output_prob=true"]),
])
def test_each_aggregation_writes_on_the_input_grid(aggregation, extra, data, tmp_path,
                                                   config_args, capsys):
    args = config_args(data, tmp_path / "model", "--max_iter", "2", "--validation_every_n", "-1",
                       "--set", f"inference.aggregation={aggregation}", *extra)
    assert main(["train", *args]) == 0
    assert main(["infer", *args]) == 0
    assert "windows (" in capsys.readouterr().out           # the progress bar's last line
    rows = list(csv.reader((tmp_path / "model" / "segmentation" / "inferred.csv").open()))
    probabilities = "segmentation.output_prob=true" in extra
    for subject, path in rows:
        out = nib.load(path)
        source = nib.load(data / f"{subject}_image.nii.gz")
        assert out.shape[:3] == source.shape
        assert out.shape == (source.shape + (3,) if probabilities else source.shape)
        if probabilities:
            np.testing.assert_allclose(out.get_fdata().sum(axis=-1), 1.0, atol=1e-3)


def test_weighted_sampling_without_a_map_is_a_config_error(data, tmp_path, config_args, capsys):
    args = config_args(data, tmp_path / "model", "--set", "network.window_sampling=weighted")
    assert main(["train", *args]) == 2
    assert "[segmentation] sampler: required for window_sampling: weighted" in capsys.readouterr().err
