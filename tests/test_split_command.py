"""`niftykit split`: the dataset split file, and K cross-validation folds."""

import csv

from niftykit.cli import main
from niftykit.data import make_shapes
from niftykit.io import load_or_create_split



def test_split_writes_the_split_file_once(tmp_path, capsys, config_args):
    data, model = tmp_path / "data", tmp_path / "model"
    make_shapes(data, n_subjects=10, shape=(8, 8, 8))
    assert main(["split", *config_args(data, model)]) == 0
    rows = list(csv.reader((model / "dataset_split.csv").open()))
    assert sorted(phase for _, phase in rows).count("training") == 6
    assert main(["split", *config_args(data, model)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["split", *config_args(data, model), "--overwrite"]) == 0


def test_split_folds_cover_every_subject_once(tmp_path, capsys, config_args):
    data, model = tmp_path / "data", tmp_path / "model"
    make_shapes(data, n_subjects=7, shape=(8, 8, 8))
    assert main(["split", *config_args(data, model), "--folds", "3"]) == 0
    files = sorted((model / "folds").glob("fold_*.csv"))
    assert [f.name for f in files] == ["fold_0.csv", "fold_1.csv", "fold_2.csv"]
    held_out = []
    ids = [f"case{i:02d}" for i in range(7)]
    for path in files:
        split = load_or_create_split(path, ids)
        held_out += [sid for sid, phase in split.items() if phase == "inference"]
    assert sorted(held_out) == ids
    assert "--set system.dataset_split_file=" in capsys.readouterr().out
    assert main(["split", *config_args(data, model), "--folds", "9"]) == 2


def test_stratified_split_of_a_classification_set_and_refused_for_segmentation(
        tmp_path, capsys, config_args):
    from pathlib import Path

    from niftykit.data.radiographs import make_radiographs

    data, model = tmp_path / "films", tmp_path / "model"
    rows = dict(make_radiographs(data, n=30, size=16, prevalence=0.2, seed=4))  # 6 abnormal
    config = Path(__file__).resolve().parents[1] / "configs" / "method_xray_screening.yaml"
    common = ["-c", str(config), "--set", f"inputs.image.path_to_search={data}",
              "--set", f"inputs.label.csv_data_file={data / 'labels.csv'}",
              "--set", f"system.model_dir={model}", "--set", "training.stratify_split=true"]
    assert main(["split", *common]) == 0  # exclude_fraction_for_inference 0.4: 12 of 30
    split = load_or_create_split(model / "dataset_split.csv", list(rows))
    held = [s for s, phase in split.items() if phase == "inference"]
    assert len(held) == 12 and sum(rows[s] for s in held) in (2, 3)  # 12 × 0.2 = 2.4
    assert main(["split", *common, "--folds", "3"]) == 0
    for k in range(3):
        fold = load_or_create_split(model / "folds" / f"fold_{k}.csv", list(rows))
        assert sum(rows[s] for s, phase in fold.items() if phase == "inference") == 2
    shapes = tmp_path / "shapes"
    make_shapes(shapes, n_subjects=6, shape=(8, 8, 8))
    capsys.readouterr()
    assert main(["split", *config_args(shapes, tmp_path / "seg"),
                 "--set", "training.stratify_split=true"]) == 2
    assert "stratify_split" in capsys.readouterr().err
