from pathlib import Path

import pytest

from niftykit.config import load_config
from niftykit.errors import ConfigError


def test_missing_file(write):
    write("x.yaml", "")
    with pytest.raises(ConfigError, match=r"^configs/none.yaml: no such config file$"):
        load_config("configs/none.yaml")


def test_folder_is_not_a_config(write, tmp_path):
    write("x.yaml", "")
    with pytest.raises(ConfigError, match="^configs: is a folder"):
        load_config(tmp_path / "configs")


def test_unknown_suffix(write):
    path = write("x.txt", "a: 1\n")
    with pytest.raises(ConfigError, match=r"^configs/x.txt: unknown config file type '.txt'"):
        load_config(path)


def test_yml_suffix_and_source(write, tmp_path, minimal_yaml):
    path = write("x.yml", minimal_yaml)
    config = load_config("configs/x.yml")
    assert config.source == tmp_path / "configs" / "x.yml"
    assert config == load_config(path)


def test_import_does_not_pull_tensorflow():
    import subprocess
    import sys
    code = ("import sys, niftykit.config; "
            "sys.exit(int(any(m in sys.modules for m in ('tensorflow', 'keras'))))")
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0


DESIGN_EXAMPLE = """\
application: segmentation          # segmentation | classification | regression
inputs:
  ct:
    path_to_search: ../data/abdominal_ct      # a folder or a list of folders
    filename_contains: [CT]
    filename_not_contains: []
    axcodes: [R, A, S]
    pixdim: null                   # e.g. [1.0, 1.0, 1.0] mm
    interp_order: 1
    spatial_window_size: [144, 144, 144]
  label:
    path_to_search: ../data/abdominal_ct
    filename_contains: [Label]
    interp_order: 0
    spatial_window_size: [144, 144, 144]
system:
  model_dir: ../runs/abdominal_seg
  dataset_split_file: dataset_split.csv
  strategy: default                # default | mirrored | multi_worker
  seed: 0
network:
  name: dense_vnet                 # registered name or package.module:Class
  params: {}                       # architecture hyper-parameters
  batch_size: 2
  window_sampling: resize          # uniform | weighted | balanced | resize
  precision: float32               # float32 | mixed_bfloat16 | mixed_float16
training:
  optimiser: adam
  lr: 0.001
  loss_type: Dice
  max_iter: 3000
  validation_every_n: 100
inference:
  border: [0, 0, 0]
  save_seg_dir: output
segmentation:
  image: [ct]
  label: label
  num_classes: 9
  label_normalisation: true
evaluation:
  evaluations: [dice, hausdorff95, average_distance]
"""


def test_design_card_example_loads(write, tmp_path):
    config = load_config(write("abdominal_seg.yaml", DESIGN_EXAMPLE))
    assert config.inputs["ct"].axcodes == ("R", "A", "S")
    assert config.inputs["ct"].spatial_window_size == (144, 144, 144)
    assert config.system.dataset_split_file == tmp_path / "runs" / "abdominal_seg" / \
        "dataset_split.csv"
    assert config.inference.save_seg_dir == tmp_path / "runs" / "abdominal_seg" / "output"
    assert config.segmentation.label == ("label",)
    assert config.evaluation.evaluations == ("dice", "hausdorff95", "average_distance")
