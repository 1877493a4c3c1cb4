"""configs/method_backbone_2d.yaml and configs/method_ensemble.yaml through the command line,
as their comments say to run them, on small generated sets and a few iterations."""

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from niftykit.cli import main
from niftykit.data import make_nodules, make_shapes

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _rows(path: Path) -> list:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def test_keras_backbone_config_with_a_local_weights_file(tmp_path):
    import keras

    data, model = tmp_path / "data", tmp_path / "model"
    make_nodules(data, n=9, size=32, seed=2)
    weights = tmp_path / "mobilenetv2_035_notop.weights.h5"  # as a user writes ImageNet's once
    keras.applications.MobileNetV2(include_top=False, alpha=0.35, weights=None,
                                   input_shape=(32, 32, 3)).save_weights(str(weights))
    where = ["--set", f"inputs.image.path_to_search={data}",
             "--set", f"inputs.label.csv_data_file={data / 'labels.csv'}",
             "--set", f"system.model_dir={model}", "--set", "network.batch_size=2",
             "--set", f"network.params.weights_file={weights}"]
    config = ["-c", str(CONFIGS / "method_backbone_2d.yaml")]
    assert main(["train", *config, *where, "--max_iter", "2"]) == 0
    assert main(["infer", *config, *where]) == 0
    assert main(["evaluate", *config, *where]) == 0
    predicted = sorted((model / "classification").glob("*.csv"))
    assert predicted
    rows = _rows(model / "evaluation" / "evaluation.csv")
    assert rows and {"subject_id", "reference", "predicted"} <= set(rows[0])
    assert main(["train", *config, *where[:-2], "--set",
                 f"network.params.weights_file={tmp_path / 'missing.weights.h5'}",
                 "--set", f"system.model_dir={tmp_path / 'other'}", "--max_iter", "1"]) == 2


def test_ensemble_config_trains_members_exports_and_fuses(tmp_path):
    data = tmp_path / "data"
    make_shapes(data, n_subjects=6, shape=(16, 16, 16), seed=4)
    config = ["-c", str(CONFIGS / "method_ensemble.yaml")]
    where = ["--set", f"inputs.image.path_to_search={data}",
             "--set", f"inputs.label.path_to_search={data}"]
    exports = []
    for seed in (0, 1):
        member = ["--set", f"system.seed={seed}", "--set", f"system.model_dir={tmp_path / f'seed{seed}'}"]
        assert main(["train", *config, *where, *member, "--max_iter", "2"]) == 0
        assert main(["export", *config, *where, *member]) == 0
        exports += ["--model", str(tmp_path / f"seed{seed}" / "export")]
    out = tmp_path / "ensemble"
    member0 = ["--set", f"system.model_dir={tmp_path / 'seed0'}"]
    assert main(["infer", *config, *where, *member0, *exports, "--out", str(out)]) == 0
    with (tmp_path / "dataset_split.csv").open(newline="") as stream:  # shared, beside the members
        held_out = {row[0] for row in csv.reader(stream) if row[1] == "inference"}
    outputs = sorted(out.glob("*.nii.gz"))
    assert held_out and len(outputs) == len(held_out)
    for path in outputs:
        subject = next(s for s in held_out if path.name.startswith(s))
        image = nib.load(data / f"{subject}_image.nii.gz")
        seg = nib.load(path)
        assert seg.shape[:3] == image.shape[:3]
        np.testing.assert_allclose(seg.affine, image.affine, atol=1e-5)
        assert set(np.unique(np.asarray(seg.dataobj)).tolist()) <= {0, 1, 2}
