"""CascadeApplication: the region, crop and paste-back logic, the stage-1 config, and both
stages trained, inferred and evaluated through the CLI on generated 28^3 volumes (a ball and
a box in noise on an oblique 1.0 x 1.2 x 1.5 mm grid)."""

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from niftykit.application import APPLICATIONS
from niftykit.application.cascade import (CascadeApplication, crop_to_box, margin_voxels,
                                          paste_box, region_box, stage1_config)
from niftykit.cli import main
from niftykit.config import load_config
from niftykit.data.shapes import make_shapes, shapes_affine
from niftykit.errors import ConfigError, NiftykitError

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (28, 28, 28)


def write_config(folder, data, **cascade):
    """A small cascade config: stage 1 at 2 x 2.4 x 3 mm, stage 2 on the file's grid (both
    reoriented to LPS)."""
    source = {"path_to_search": str(data), "spatial_window_size": [16, 16, 16],
              "axcodes": ["L", "P", "S"]}
    config = {
        "application": "cascade",
        "inputs": {"image": {**source, "filename_contains": ["_image"]},
                   "label": {**source, "filename_contains": ["_label"], "interp_order": 0}},
        "system": {"model_dir": str(folder / "model"), "num_threads": 2, "seed": 0},
        "network": {"name": "unet", "params": {"n_features": [8, 16], "norm": "instance"},
                    "batch_size": 4, "window_sampling": "balanced", "queue_length": 8},
        "training": {"lr": 0.003, "loss_type": "Dice", "sample_per_volume": 4, "max_iter": 40,
                     "save_every_n": 0, "tensorboard_every_n": 0,
                     "exclude_fraction_for_validation": 0.0,
                     "exclude_fraction_for_inference": 0.34},
        "inference": {"save_seg_dir": "segmentation", "output_postfix": "_seg"},
        "evaluation": {"evaluations": ["dice"]},
        "cascade": {"image": ["image"], "label": "label", "num_classes": 3,
                    "stage1_pixdim": [2.0, 2.4, 3.0], "stage1_window_size": [12, 12, 12],
                    "stage1_max_iter": 40, "region_margin_mm": 4.0, **cascade},
    }
    path = folder / "cascade.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# -- the region --------------------------------------------------------------------------
def test_region_box_is_the_thresholded_voxels_grown_by_the_margin():
    probability = np.zeros((20, 20, 20), np.float32)
    probability[8:10, 5:7, 12:13] = 0.9
    probability[0, 0, 0] = 0.2  # below the threshold
    assert region_box(probability, 0.5, (1, 2, 0), (0, 0, 0)) == ((7, 3, 12), (11, 9, 13))


def test_region_box_grows_to_the_window_inside_the_volume_and_clips():
    probability = np.zeros((20, 20, 10, 1), np.float32)
    probability[1, 10, 5] = 1.0
    start, stop = region_box(probability, 0.5, (2, 2, 2), (8, 8, 16))
    assert start == (0, 6, 0) and stop == (8, 14, 10)  # x clipped at 0, z the whole axis


def test_region_box_takes_the_whole_volume_when_nothing_is_found():
    assert region_box(np.zeros((5, 6, 7)), 0.5, (1, 1, 1), (2, 2, 2)) == ((0, 0, 0), (5, 6, 7))


def test_region_box_of_the_largest_component_ignores_a_stray_detection():
    probability = np.zeros((30, 30, 30), np.float32)
    probability[10:14, 10:14, 10:14] = 0.8  # the organ
    probability[27, 2, 28] = 0.99           # one stray voxel far away
    assert region_box(probability, 0.5, (1, 1, 1), (0, 0, 0), largest=True) == \
        ((9, 9, 9), (15, 15, 15))
    assert region_box(probability, 0.5, (0, 0, 0), (0, 0, 0)) == ((10, 2, 10), (28, 14, 29))


def test_region_box_holds_the_reference_label_too():
    probability, label = np.zeros((20, 20, 20)), np.zeros((20, 20, 20, 1), np.uint8)
    probability[2, 2, 2] = 1.0
    label[15, 16, 17] = 1
    assert region_box(probability, 0.5, (0, 0, 0), (0, 0, 0), also=label) == \
        ((2, 2, 2), (16, 17, 18))


def test_crop_then_paste_gives_back_the_box_and_fills_the_rest():
    volume = np.arange(6 * 7 * 8 * 2, dtype=np.float32).reshape(6, 7, 8, 2)
    box = ((1, 2, 3), (4, 6, 8))
    part = crop_to_box(volume, box)
    assert part.shape == (3, 4, 5, 2) and part.flags.c_contiguous
    full = paste_box(part, box, volume.shape[:3], fill=[-1.0, -2.0])
    inside = (slice(1, 4), slice(2, 6), slice(3, 8))
    np.testing.assert_array_equal(full[inside], volume[inside])
    outside = np.ones((6, 7, 8), bool)
    outside[inside] = False
    assert np.all(full[outside] == [-1.0, -2.0])
    labels = paste_box(np.ones((3, 4, 5), np.int32), box, (6, 7, 8))
    assert labels.sum() == 60 and labels.dtype == np.int32


def test_margin_in_mm_becomes_voxels_on_an_oblique_anisotropic_grid():
    assert margin_voxels(3.0, shapes_affine((1.0, 1.2, 1.5), 10.0)) == (3, 3, 2)
    assert margin_voxels(0.0, np.eye(4)) == (0, 0, 0)


# -- the config --------------------------------------------------------------------------
def test_cascade_is_registered_and_its_stage1_config_is_a_coarse_segmentation(tmp_path):
    assert APPLICATIONS.get("cascade") is CascadeApplication
    config = load_config(write_config(tmp_path, tmp_path, stage1_network="toynet"))
    stage = stage1_config(config)
    assert stage.application == "segmentation" and stage.cascade is None
    assert stage.segmentation.num_classes == 3 and stage.segmentation.output_prob
    assert stage.inputs["image"].pixdim == (2.0, 2.4, 3.0)
    assert stage.inputs["label"].spatial_window_size == (12, 12, 12)
    assert stage.network.name == "toynet" and stage.network.params == {}
    assert stage.training.max_iter == 40
    assert stage.system.model_dir == config.system.model_dir / "stage1"
    assert stage.system.dataset_split_file == config.system.dataset_split_file
    assert config.inputs["image"].pixdim is None  # stage 2's config untouched


def test_shipped_config_loads(tmp_path):
    config = load_config(ROOT / "configs" / "method_cascade.yaml")
    assert config.application == "cascade" and config.cascade.cascade_mode == "input"
    assert config.cascade.stage1_pixdim == (8.0, 8.0, 12.0)


INI = """
[image]
path_to_search = ./data
filename_contains = _image
spatial_window_size = (16, 16, 16)
[SYSTEM]
model_dir = ./model
[NETWORK]
name = unet
[CASCADE]
image = image
label = image
num_classes = 2
cascade_mode = local
stage1_pixdim = 8, 8, 12
stage1_params = {n_features: [8, 16]}
{extra}
"""


def test_a_niftynet_style_ini_loads_a_cascade_section_and_checks_its_keys(tmp_path):
    path = tmp_path / "cascade.ini"
    path.write_text(INI.replace("{extra}", ""))
    config = load_config(path)
    assert config.application == "cascade" and config.task_section == "cascade"
    assert config.cascade.stage1_pixdim == (8.0, 8.0, 12.0)
    assert config.cascade.stage1_params == {"n_features": [8, 16]}
    assert config.cascade.cascade_mode == "local" and config.cascade.region_margin_mm == 10.0
    path.write_text(INI.replace("{extra}", "stage1_treshold = 0.4"))
    with pytest.raises(ConfigError, match=r"\[CASCADE\] stage1_treshold.*stage1_threshold"):
        load_config(path)
    path.write_text(INI.replace("{extra}", "cascade_mode = global"))
    with pytest.raises(ConfigError, match="cascade_mode"):
        load_config(path)


def test_a_missing_stage1_pixdim_and_a_resize_sampling_are_one_line_errors(tmp_path, capsys):
    path = write_config(tmp_path, tmp_path)
    text = yaml.safe_load(path.read_text())
    del text["cascade"]["stage1_pixdim"]
    path.write_text(yaml.safe_dump(text))
    assert main(["train", "-c", str(path)]) == 2
    assert "[cascade] stage1_pixdim: required" in capsys.readouterr().err
    good = write_config(tmp_path, tmp_path)
    assert main(["train", "-c", str(good), "--set", "network.window_sampling=resize"]) == 2
    assert "window_sampling" in capsys.readouterr().err


# -- end to end --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Both stages trained (40 iterations each), then inferred and evaluated."""
    root = tmp_path_factory.mktemp("cascade")
    data = root / "data"
    make_shapes(data, n_subjects=6, shape=SHAPE, seed=3)
    path = write_config(root, data)
    for command in ("train", "infer", "evaluate"):
        assert main([command, "-c", str(path)]) == 0, command
    return root, data


def test_training_writes_both_stages(run):
    model = run[0] / "model"
    assert (model / "stage1" / "models" / "model.ckpt-40.index").exists()
    assert (model / "models" / "model.ckpt-40.index").exists()
    assert yaml.safe_load((model / "stage1" / "config.yaml").read_text())["application"] == \
        "segmentation"


def test_export_refuses_a_cascade_with_one_line(run, capsys):
    root, _ = run
    capsys.readouterr()
    assert main(["export", "-c", str(root / "cascade.yaml")]) == 2
    assert "runs 2 networks (stages) and an export holds one" in capsys.readouterr().err
    assert not (root / "model" / "export").exists()


def test_outputs_lie_on_the_oblique_input_grid(run):
    root, data = run
    rows = list(csv.reader((root / "model" / "segmentation" / "inferred.csv").open()))
    assert len(rows) == 3
    for subject, path in rows:
        source = nib.load(data / f"{subject}_image.nii.gz")
        output = nib.load(path)
        assert output.shape == source.shape == SHAPE
        np.testing.assert_allclose(output.affine, source.affine, atol=1e-5)
        assert set(np.unique(np.asarray(output.dataobj))) <= {0, 1, 2}


def test_evaluation_scores_the_cascade_better_than_nothing(run):
    rows = list(csv.DictReader((run[0] / "model" / "evaluation" / "evaluation.csv").open()))
    dice = [float(row["dice"]) for row in rows]
    assert len(dice) == 3 and np.mean(dice) > 0.2, rows


def test_a_second_train_reuses_stage1_and_local_mode_trains(run):
    root, data = run
    stage1 = root / "model" / "stage1" / "models" / "model.ckpt-40.index"
    before = stage1.stat().st_mtime_ns
    path = write_config(root, data, cascade_mode="local", local_features=4)
    argv = ["train", "-c", str(path), "--max_iter", "5", "--overwrite"]
    assert main(argv) == 0
    assert stage1.stat().st_mtime_ns == before  # same stage-1 config: not trained again
    assert (root / "model" / "models" / "model.ckpt-5.index").exists()
    assert main(["infer", "-c", str(path), "--overwrite"]) == 0
    rows = list(csv.reader((root / "model" / "segmentation" / "inferred.csv").open()))
    assert nib.load(rows[0][1]).shape == SHAPE


def test_preprocess_crops_every_volume_to_the_region_and_adds_the_prior(run):
    root, data = run
    config = load_config(write_config(root, data))
    import tensorflow as tf

    from niftykit.engine.stages import attach_stages

    app = CascadeApplication(config)
    subject = app.subjects("training")[0]
    with pytest.raises(NiftykitError, match="stage 1's network is not attached"):
        app.preprocess(subject, with_label=True)
    attach_stages(app, tf)  # what niftykit.engine does before prepare
    app.prepare("inference", [subject])
    prepared = app.preprocess(subject, with_label=True)
    image, label = prepared.volumes["image"], prepared.volumes["label"]
    size = tuple(b - a for a, b in zip(*prepared.box))
    assert image.shape == size + (2,) and label.shape == size + (1,)
    assert all(s >= 16 for s in size) and prepared.shape == SHAPE
    prior = image[..., 1]
    assert 0.0 <= prior.min() and prior.max() <= 1.0
    region = load_config(write_config(root, data, cascade_mode="region"))
    app = CascadeApplication(region)
    attach_stages(app, tf)
    app.prepare("inference", [subject])
    assert app.preprocess(subject, with_label=False).volumes["image"].shape[-1] == 1
