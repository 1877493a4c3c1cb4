"""DeepMedic plus the dense CRF through the CLI and the shipped config
(configs/method_deepmedic_crf.yaml), with a tiny network on generated shapes: the CRF
runs on the preprocessed grid inside the volume padding and the outputs lie on the
input's exact grid."""

import csv
from pathlib import Path

import nibabel as nib
import numpy as np

from niftykit.cli import main
from niftykit.data import make_shapes

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "method_deepmedic_crf.yaml"
TINY = "{conv_features: [4, 4, 4, 4, 4, 4, 4, 4], fc_features: [8, 8], dropout_rate: 0}"


def args(data, model, *extra):
    return ["-c", str(CONFIG), "--set", f"inputs.image.path_to_search={data}",
            "--set", f"inputs.label.path_to_search={data}", "--set", f"system.model_dir={model}",
            "--set", f"network.params={TINY}", *extra]


def inferred(model, folder):
    with (model / folder / "inferred.csv").open(newline="") as handle:
        return list(csv.reader(handle))


def test_deepmedic_with_dense_crf_infers_on_the_input_grid(tmp_path, capsys):
    data, model = tmp_path / "data", tmp_path / "model"
    make_shapes(data, n_subjects=3, shape=(20, 22, 16), seed=5)
    assert main(["train", *args(data, model, "--max_iter", "3", "--save_every_n", "3",
                                "--batch_size", "2", "--sample_per_volume", "2")]) == 0
    capsys.readouterr()
    assert main(["infer", *args(data, model)]) == 0  # the config's crf: dense
    # on the volume without its 24-voxel padding, with the file's spacing (no resampling)
    out = capsys.readouterr().out
    assert "dense CRF: 5 iterations on 20x22x16 voxels (spacing [1.0, 1.2, 1.5] mm)" in out
    rows = inferred(model, "segmentation")
    assert rows
    for subject, path in rows:
        out, source = nib.load(path), nib.load(data / f"{subject}_image.nii.gz")
        assert out.shape == source.shape
        np.testing.assert_allclose(out.affine, source.affine, atol=1e-6)
        assert set(np.unique(np.asarray(out.dataobj)).tolist()) <= {0, 1, 2}
    assert main(["evaluate", *args(data, model)]) == 0

    # probabilities after the CRF, restored to the file's grid
    assert main(["infer", *args(data, model, "--set", "segmentation.output_prob=true",
                                "--set", "inference.save_seg_dir=probabilities")]) == 0
    for subject, path in inferred(model, "probabilities"):
        probabilities = np.asarray(nib.load(path).dataobj)
        assert probabilities.shape[:3] == nib.load(data / f"{subject}_image.nii.gz").shape
        assert probabilities.shape[-1] == 3 and np.all(np.isfinite(probabilities))
        np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-4)


def test_an_unknown_crf_is_a_config_error(tmp_path, capsys):
    status = main(["config", "show", *args(tmp_path, tmp_path / "model",
                                           "--set", "inference.crf=densecrf")])
    assert status == 2
    err = capsys.readouterr().err
    assert "[inference] crf" in err and "dense" in err
