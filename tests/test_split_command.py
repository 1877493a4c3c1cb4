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
