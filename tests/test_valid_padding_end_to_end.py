"""A valid-padded network through the real CLI: its output is smaller than its window, so
training crops the labels to the output and inference raises the border until the outputs
tile the volume; the label map still lies on the input's exact grid."""

import csv

import nibabel as nib
import numpy as np

from niftykit.cli import main
from niftykit.data import make_shapes

VALID_UNET = '{n_features: [4, 8], padding: valid, norm: instance}'


def test_valid_unet_trains_and_infers_on_the_input_grid(tmp_path, config_args, capsys):
    data, model = tmp_path / "data", tmp_path / "model"
    make_shapes(data, n_subjects=4, shape=(20, 22, 18), seed=3)
    common = ("--set", f"network.params={VALID_UNET}",
              "--set", "inputs.image.spatial_window_size=[28, 28, 28]",
              "--set", "inputs.label.spatial_window_size=[28, 28, 28]",
              "--set", "inference.spatial_window_size=[28, 28, 28]",
              "--set", "inference.aggregation=crop", "--set", "inference.overlap=0")
    # 28 -> 12 voxels out: (28 - 4) / 2 - 4 = 8 at the bottom, 8 * 2 - 4 = 12
    assert main(["train", *config_args(data, model, *common, "--max_iter", "3",
                                       "--save_every_n", "3", "--volume_padding_size",
                                       "[8, 8, 8]")]) == 0
    capsys.readouterr()
    assert main(["infer", *config_args(data, model, *common,
                                       "--volume_padding_size", "[8, 8, 8]")]) == 0
    assert "raised to (8, 8, 8)" in capsys.readouterr().out
    rows = list(csv.reader((model / "segmentation" / "inferred.csv").open()))
    assert rows
    for subject, path in rows:
        out, source = nib.load(path), nib.load(data / f"{subject}_image.nii.gz")
        assert out.shape == source.shape
        np.testing.assert_allclose(out.affine, source.affine, atol=1e-6)
        assert set(np.unique(np.asarray(out.dataobj)).tolist()) <= {0, 1, 2}


def test_a_window_the_valid_unet_cannot_take_names_the_nearest(tmp_path, config_args, capsys):
    data, model = tmp_path / "data", tmp_path / "model"
    make_shapes(data, n_subjects=2, shape=(16, 16, 16), seed=3)
    status = main(["train", *config_args(
        data, model, "--set", f"network.params={VALID_UNET}",
        "--set", "inputs.image.spatial_window_size=[27, 28, 28]",
        "--set", "inputs.label.spatial_window_size=[27, 28, 28]", "--max_iter", "1")])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "spatial_window_size" in err[0] and "x=27 (try 26 or 28)" in err[0], err
