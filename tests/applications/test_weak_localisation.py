"""applications/weak_localisation.py: class activation maps from image-level labels, on 16^3
volumes; the lesion masks are read by `evaluate` alone."""

import csv

import keras
import nibabel as nib
import numpy as np
import pytest

from applications.weak_localisation import (WeakLocalisationApplication, centred_blob,
                                            class_activation_maps, localisation_scores,
                                            normalise_map)
from niftykit.config import load_config
from niftykit.data.weak import make_weak_lesions
from niftykit.sampler import resize_to

CONFIG = "method_weak_cam.yaml"


def args(cli, data, model, *extra):
    return ["-c", cli.CONFIGS / CONFIG, "--set", f"inputs.image.path_to_search={data}",
            "--set", f"inputs.label.csv_data_file={data / 'labels.csv'}",
            "--set", f"inputs.lesion.path_to_search={data / 'masks'}",
            "--set", f"system.model_dir={model}",
            "--set", "inputs.image.spatial_window_size=[16,16,16]", *extra]


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


class Tiny(keras.Model):
    """features = 1x1x1 convolution (2 channels, linear); GAP; Dense(2): weights set by hand."""

    def __init__(self):
        super().__init__(name="network")
        self.conv = keras.layers.Conv3D(2, 1, name="conv")
        self.pool = keras.layers.GlobalAveragePooling3D(name="pool")
        self.classifier = keras.layers.Dense(2, name="classifier")

    def call(self, inputs, training=None):
        return self.classifier(self.pool(self.conv(inputs)))


CONV_W, CONV_B = np.array([2.0, -1.0]), np.array([0.5, 0.25])
DENSE_W, DENSE_B = np.array([[1.0, -3.0], [0.5, 2.0]]), np.array([0.1, -0.2])


def tiny(maps):
    model = class_activation_maps(Tiny()) if maps else Tiny()
    model(np.zeros((1, 4, 4, 4, 1), np.float32))
    model.conv.set_weights([CONV_W.reshape(1, 1, 1, 1, 2), CONV_B])
    model.classifier.set_weights([DENSE_W, DENSE_B])
    return model


def test_cam_is_the_classifier_weighted_sum_of_the_last_feature_maps():
    x = np.random.default_rng(0).normal(size=(1, 4, 5, 3, 1)).astype(np.float32)
    features = x[0] * CONV_W + CONV_B                        # (4, 5, 3, 2) by hand
    expected = features @ DENSE_W + DENSE_B                  # M_c = b_c + sum_k w_kc f_k
    maps = tiny(True)(x).numpy()[0]
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-5)
    # its spatial mean is the pooled network's logits: the same weights, the same classifier
    np.testing.assert_allclose(maps.mean(axis=(0, 1, 2)), tiny(False)(x).numpy()[0], rtol=1e-5)


def test_a_network_without_a_pooled_dense_head_is_refused():
    with pytest.raises(ValueError, match="Grad-CAM"):
        class_activation_maps(keras.Sequential([keras.layers.Dense(2)]))


@pytest.fixture(scope="module")
def config(tmp_path_factory, cli):
    data = tmp_path_factory.mktemp("weak_config")
    return load_config(cli.CONFIGS / CONFIG, [f"inputs.image.path_to_search={data}",
                                              f"system.model_dir={data / 'model'}",
                                              "inputs.image.spatial_window_size=[8,8,8]"])


def test_the_written_map_is_the_hand_map_zoomed_to_the_volume_and_rescaled(config):
    app = WeakLocalisationApplication(config)
    raw = np.random.default_rng(1).normal(size=(1, 4, 4, 4, 2)).astype(np.float32)
    volume = np.zeros((12, 10, 8, 1), np.float32)              # zoomed to the 8^3 window
    seen = []

    def predict(windows):
        seen.append(windows.shape)
        return raw
    cam = app.activation_map(volume, predict)
    zoomed = resize_to(resize_to(raw[0][..., 1:], (8, 8, 8), 1), (12, 10, 8), 1)[..., 0]
    assert seen == [(1, 8, 8, 8, 1)]
    np.testing.assert_allclose(cam, normalise_map(zoomed), atol=1e-6)
    assert cam.min() == 0.0 and cam.max() == pytest.approx(1.0)


def test_scores_and_baselines_on_hand_made_arrays():
    mask = np.zeros((6, 6, 6), np.uint8)
    mask[1:3, 1:3, 1:3] = 1
    cam = np.zeros((6, 6, 6), np.float32)
    cam[1:3, 1:3, 1:4] = 0.6
    cam[2, 2, 2] = 1.0
    scores = localisation_scores(cam, mask, 0.5)
    assert scores["dice"] == pytest.approx(2 * 8 / (8 + 12))
    assert scores["pointing_hit"] == 1.0 and scores["random_hit"] == pytest.approx(8 / 216)
    cam[2, 2, 2], cam[5, 5, 5] = 0.6, 1.0
    assert localisation_scores(cam, mask, 0.5)["pointing_hit"] == 0.0
    blob = centred_blob((5, 7, 9), np.diag([2.0, 1.0, 1.0, 1.0]))
    assert np.unravel_index(np.argmax(blob), blob.shape) == (2, 3, 4)
    assert blob[1, 3, 4] == pytest.approx(blob[2, 1, 4])      # round in mm, not in voxels


def test_a_bad_threshold_is_one_line_with_status_2(cli, tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text((cli.CONFIGS / CONFIG).read_text().replace("cam_threshold: 0.2",
                                                                  "cam_threshold: 1.5"))
    status, _ = cli.run(["train", "-c", config, "--set", f"system.model_dir={tmp_path}"])
    message = capsys.readouterr().err.strip()
    assert status == 2 and "cam_threshold: expected a number in (0, 1), got 1.5" in message
    assert len(message.splitlines()) == 1, message


@pytest.fixture(scope="module")
def run(tmp_path_factory, cli):
    """40 iterations on 12 subjects of 16^3 (5 held out), then infer and evaluate."""
    root = tmp_path_factory.mktemp("weak_localisation")
    data, model = root / "data", root / "model"
    make_weak_lesions(data, n=12, size=16, seed=1)
    status, log = cli.run(["train", *args(cli, data, model, "--max_iter", "40")])
    assert status == 0, log
    for command in ("infer", "evaluate"):
        status, log = cli.run([command, *args(cli, data, model)])
        assert status == 0, log
    return data, model


def test_training_reads_the_labels_and_never_the_masks(run, config):
    data, model = run
    app = WeakLocalisationApplication(config)
    assert "lesion" not in app.input_sources("training")
    split = dict(csv.reader((model / "dataset_split.csv").open()))
    assert sorted(split) == [f"weak{i:02d}" for i in range(12)]


def test_maps_lie_on_the_input_grid_in_0_1_and_the_mask_is_their_threshold(run):
    data, model = run
    inferred = list(csv.reader((model / "cam" / "inferred.csv").open()))
    assert len(inferred) == 5  # 0.34 of 12 subjects held out
    for subject, path in inferred:
        (row,) = rows(path)
        assert list(row) == ["subject_id", "label", "prob_0", "prob_1"]
        image = nib.load(data / f"{subject}_image.nii.gz")
        cam = nib.load(model / "cam" / f"{subject}_cam.nii.gz")
        mask = nib.load(model / "cam" / f"{subject}_cam_mask.nii.gz")
        for output in (cam, mask):
            assert output.shape == image.shape
            np.testing.assert_allclose(output.affine, image.affine, atol=1e-5)
        values = np.asarray(cam.dataobj)
        assert values.dtype == np.float32 and values.min() >= 0 and values.max() == 1.0
        np.testing.assert_array_equal(np.asarray(mask.dataobj), values >= 0.2)


def test_an_oblique_anisotropic_input_of_another_shape_gets_maps_on_its_grid(run, cli, tmp_path):
    data, model = run
    rotation = np.linalg.qr(np.random.default_rng(2).normal(size=(3, 3)))[0]
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.7, 1.3, 2.1])
    affine[:3, 3] = (12.0, -40.0, 7.5)
    image = np.random.default_rng(3).normal(size=(19, 13, 11)).astype(np.float32)
    nib.save(nib.Nifti1Image(image, affine), tmp_path / "odd_image.nii.gz")  # subject "odd"
    odd = tmp_path / "odd_image.nii.gz"
    status, log = cli.run(["infer", *args(cli, data, model, "--input", odd,
                                          "--set", f"inference.save_seg_dir={tmp_path / 'out'}")])
    assert status == 0, log
    cam = nib.load(tmp_path / "out" / "odd_cam.nii.gz")
    assert cam.shape == (19, 13, 11)
    np.testing.assert_allclose(cam.affine, affine, atol=1e-5)


def test_evaluation_scores_each_held_out_lesion_against_its_unseen_mask(run):
    data, model = run
    inferred = {r[0] for r in csv.reader((model / "cam" / "inferred.csv").open())}
    positives = {s for s in inferred if int(s[-2:]) % 2}
    table = rows(model / "evaluation" / "localisation.csv")
    assert list(table[0]) == ["subject_id", "lesion_voxels", "cam_voxels", "dice",
                              "pointing_hit", "centre_dice", "centre_hit", "random_hit"]
    assert {r["subject_id"] for r in table} == positives
    for row in table:
        mask = np.asarray(nib.load(data / "masks" / f"{row['subject_id']}_mask.nii.gz").dataobj)
        cam = np.asarray(nib.load(model / "cam" / f"{row['subject_id']}_cam.nii.gz").dataobj)
        assert int(row["lesion_voxels"]) == int(mask.sum()) > 0
        assert float(row["dice"]) == pytest.approx(localisation_scores(cam, mask, 0.2)["dice"],
                                                   abs=1e-5)
        assert float(row["pointing_hit"]) == float(mask.flat[np.argmax(cam)] > 0)
    assert (model / "evaluation" / "evaluation.csv").exists()
