from __future__ import annotations

import logging

import pytest

from niftykit.errors import DataError
from niftykit.io import load_or_create_split, subjects_in_phase
from niftykit.io.partition import write_folds

IDS = [f"s{i:02d}" for i in range(10)]


def test_created_split_is_deterministic_and_written(tmp_path):
    first = load_or_create_split(tmp_path / "a.csv", IDS, validation_fraction=0.2, inference_fraction=0.1, seed=3)
    second = load_or_create_split(tmp_path / "b.csv", list(reversed(IDS)), validation_fraction=0.2,
                                  inference_fraction=0.1, seed=3)
    assert first == second
    assert len(subjects_in_phase(first, "validation")) == 2
    assert len(subjects_in_phase(first, "inference")) == 1
    assert len(subjects_in_phase(first, "training")) == 7
    lines = (tmp_path / "a.csv").read_text().splitlines()
    assert sorted(lines) == sorted(f"{s},{p}" for s, p in first.items())


def test_other_seed_gives_another_split(tmp_path):
    a = load_or_create_split(tmp_path / "a.csv", IDS, validation_fraction=0.3, seed=0)
    b = load_or_create_split(tmp_path / "b.csv", IDS, validation_fraction=0.3, seed=1)
    assert subjects_in_phase(a, "validation") != subjects_in_phase(b, "validation")


def test_existing_file_is_reused_and_fractions_ignored(tmp_path):
    split_file = tmp_path / "split.csv"
    created = load_or_create_split(split_file, IDS, validation_fraction=0.2, seed=5)
    reused = load_or_create_split(split_file, IDS, validation_fraction=0.5, seed=9)
    assert reused == created


def test_ceil_of_fraction_is_not_fooled_by_rounding(tmp_path):
    ids = [str(i) for i in range(30)]
    split = load_or_create_split(tmp_path / "s.csv", ids, validation_fraction=0.1)
    assert len(subjects_in_phase(split, "validation")) == 3


def test_existing_file_case_insensitive_header_and_duplicates(tmp_path, caplog):
    split_file = tmp_path / "split.csv"
    split_file.write_text("subject_id,phase\ns00,Training\ns01, VALIDATION\ns00,training\n")
    with caplog.at_level(logging.WARNING, logger="niftykit"):
        split = load_or_create_split(split_file, ["s00", "s01", "s02"])
    assert split == {"s00": "training", "s01": "validation"}
    assert "s02" in caplog.text


def test_unknown_subject_names_file_and_id(tmp_path):
    split_file = tmp_path / "split.csv"
    split_file.write_text("s00,training\nghost,validation\n")
    with pytest.raises(DataError, match=r"split\.csv line 2: subject 'ghost' is not among"):
        load_or_create_split(split_file, IDS)


def test_bad_phase_is_an_error(tmp_path):
    split_file = tmp_path / "split.csv"
    split_file.write_text("s00,testing\n")
    with pytest.raises(DataError, match=r"split\.csv line 1: phase 'testing'.*training, validation, inference"):
        load_or_create_split(split_file, IDS)


def test_zero_fractions_mean_all_training_and_no_file(tmp_path):
    split_file = tmp_path / "split.csv"
    split = load_or_create_split(split_file, IDS)
    assert set(split.values()) == {"training"} and list(split) == IDS
    assert not split_file.exists()


def test_fractions_must_leave_a_training_subject(tmp_path):
    with pytest.raises(DataError, match="leave one for training"):
        load_or_create_split(tmp_path / "s.csv", ["a", "b"], validation_fraction=0.5, inference_fraction=0.5)
    assert not (tmp_path / "s.csv").exists()


def test_subjects_in_phase_rejects_unknown_phase():
    with pytest.raises(ValueError, match="phase"):
        subjects_in_phase({"a": "training"}, "test")


# ---------------------------------------------------------------- k folds

SUBJECTS = [f"case{i:02d}" for i in range(11)]


def _load_all(paths):
    return [load_or_create_split(p, SUBJECTS) for p in paths]


def test_every_subject_is_held_out_in_exactly_one_fold(tmp_path):
    paths = write_folds(tmp_path / "folds", SUBJECTS, 4)
    assert paths == [tmp_path / "folds" / f"fold_{k}.csv" for k in range(4)]
    splits = _load_all(paths)
    held_out = [subjects_in_phase(split, "inference") for split in splits]
    assert sorted(s for group in held_out for s in group) == SUBJECTS
    assert sorted(len(group) for group in held_out) == [2, 3, 3, 3]
    for split in splits:
        assert set(split) == set(SUBJECTS)
        assert len(subjects_in_phase(split, "training")) == 11 - len(subjects_in_phase(split, "inference"))


def test_fold_sizes_differ_by_at_most_one(tmp_path):
    for folds in (2, 3, 5, 7, 11):
        paths = write_folds(tmp_path / str(folds), SUBJECTS, folds)
        sizes = [len(subjects_in_phase(s, "inference")) for s in _load_all(paths)]
        assert max(sizes) - min(sizes) <= 1 and sum(sizes) == 11


def test_folds_are_deterministic_for_a_seed_and_order_free(tmp_path):
    a = _load_all(write_folds(tmp_path / "a", SUBJECTS, 3, seed=4, validation_fraction=0.25))
    b = _load_all(write_folds(tmp_path / "b", list(reversed(SUBJECTS)), 3, seed=4, validation_fraction=0.25))
    c = _load_all(write_folds(tmp_path / "c", SUBJECTS, 3, seed=5, validation_fraction=0.25))
    assert a == b
    assert a != c


def test_validation_share_comes_from_each_folds_training_subjects(tmp_path):
    paths = write_folds(tmp_path, SUBJECTS, 4, validation_fraction=0.2)
    for split in _load_all(paths):
        n_train = 11 - len(subjects_in_phase(split, "inference"))
        assert len(subjects_in_phase(split, "validation")) == -(-n_train // 5)  # ceil(0.2 * n_train)


def test_fold_file_has_the_split_file_format(tmp_path):
    first, second = write_folds(tmp_path, ["b", "a"], 2)
    lines = first.read_text().splitlines()
    assert lines in (["a,inference", "b,training"], ["a,training", "b,inference"])  # sorted ids, no header
    assert second.read_text().splitlines() != lines


@pytest.mark.parametrize("folds", [0, 1, 12])
def test_fold_count_out_of_range_says_what_is_right(tmp_path, folds):
    with pytest.raises(DataError, match=rf"cannot make {folds} fold\(s\) of 11 subjects.*between 2 and 11"):
        write_folds(tmp_path, SUBJECTS, folds)
    assert list(tmp_path.iterdir()) == []


def test_too_few_subjects_for_folds(tmp_path):
    with pytest.raises(DataError, match="at least 2 subjects, got 1"):
        write_folds(tmp_path, ["only"], 2)


def test_validation_fraction_out_of_range(tmp_path):
    with pytest.raises(DataError, match=r"validation_fraction = 1\.0"):
        write_folds(tmp_path, SUBJECTS, 3, validation_fraction=1.0)


def test_existing_fold_file_is_kept_unless_overwrite(tmp_path):
    write_folds(tmp_path, SUBJECTS, 3, seed=0)
    before = (tmp_path / "fold_2.csv").read_text()
    (tmp_path / "fold_0.csv").unlink()
    with pytest.raises(DataError, match=r"fold_1\.csv exists.*overwrite"):
        write_folds(tmp_path, SUBJECTS, 3, seed=1)
    assert not (tmp_path / "fold_0.csv").exists()  # nothing written when one file is in the way
    write_folds(tmp_path, SUBJECTS, 3, seed=1, overwrite=True)
    assert (tmp_path / "fold_0.csv").exists() and (tmp_path / "fold_2.csv").read_text() != before


def test_a_split_written_meanwhile_by_another_worker_is_used_if_it_is_the_same(tmp_path, monkeypatch):
    """Two workers of one run draw the same seeded split; the second to write finds the file."""
    import niftykit.io.partition as partition

    ids = [f"s{i}" for i in range(10)]
    path = tmp_path / "split.csv"
    real = partition.write_csv

    def other_worker_first(target, rows, **kwargs):
        rows = list(rows)
        real(target, rows)             # the other worker's file appears ...
        return real(target, rows, **kwargs)   # ... so this write finds it and refuses

    monkeypatch.setattr(partition, "write_csv", other_worker_first)
    split = load_or_create_split(path, ids, inference_fraction=0.3, seed=1)
    assert split == load_or_create_split(path, ids)

    def other_split_first(target, rows, **kwargs):
        real(target, [(s, "training") for s in ids])
        return real(target, list(rows), **kwargs)

    monkeypatch.setattr(partition, "write_csv", other_split_first)
    with pytest.raises(DataError, match="exists"):
        load_or_create_split(tmp_path / "other.csv", ids, inference_fraction=0.3, seed=1)


def _per_class(split, strata):
    counts = {}
    for subject, phase in split.items():
        counts[(phase, strata[subject])] = counts.get((phase, strata[subject]), 0) + 1
    return counts


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_stratified_split_keeps_each_class_in_proportion(tmp_path, seed):
    ids = [f"s{i:03d}" for i in range(80)]
    strata = {s: ("abnormal" if i % 5 == 0 else "normal") for i, s in enumerate(ids)}  # 16 of 80
    split = load_or_create_split(tmp_path / f"split{seed}.csv", ids, validation_fraction=0.1,
                                 inference_fraction=0.25, seed=seed, strata=strata)
    counts = _per_class(split, strata)
    assert counts[("validation", "abnormal")] + counts[("validation", "normal")] == 8
    assert counts[("inference", "abnormal")] + counts[("inference", "normal")] == 20
    assert counts[("validation", "abnormal")] in (1, 2)  # 8 × 0.2 = 1.6
    assert counts[("inference", "abnormal")] == 4  # 20 × 0.2
    again = load_or_create_split(tmp_path / f"again{seed}.csv", ids, validation_fraction=0.1,
                                 inference_fraction=0.25, seed=seed, strata=strata)
    assert again == split


def test_stratified_folds_deal_each_class_evenly(tmp_path):
    ids = [f"s{i:03d}" for i in range(80)]
    strata = {s: int(i < 16) for i, s in enumerate(ids)}
    paths = write_folds(tmp_path, ids, 5, seed=1, validation_fraction=0.1, strata=strata)
    held = []
    for path in paths:
        rows = dict(line.split(",") for line in path.read_text().split())
        counts = _per_class(rows, strata)
        assert counts.get(("inference", 1), 0) in (3, 4)  # 16 positives over 5 folds
        assert counts.get(("validation", 1), 0) in (1, 2)  # 7 of 64 training, 20 %
        held += [s for s, phase in rows.items() if phase == "inference"]
    assert sorted(held) == ids


def test_strata_must_name_every_subject(tmp_path):
    ids = [f"s{i:03d}" for i in range(20)]
    with pytest.raises(DataError, match="no class for subject"):
        load_or_create_split(tmp_path / "x.csv", ids, validation_fraction=0.2,
                             strata={s: 0 for s in ids[1:]})


def test_strata_given_as_a_function_are_read_only_when_a_split_is_drawn(tmp_path):
    calls = []

    def strata():
        calls.append(1)
        return {s: i % 2 for i, s in enumerate(IDS)}

    assert set(load_or_create_split(tmp_path / "none.csv", IDS, strata=strata).values()) == {"training"}
    assert calls == []  # no fractions: nothing drawn
    drawn = load_or_create_split(tmp_path / "a.csv", IDS, validation_fraction=0.2, strata=strata)
    assert calls == [1]
    again = load_or_create_split(tmp_path / "a.csv", IDS, validation_fraction=0.5, strata=strata)
    assert calls == [1] and again == drawn  # the file is read, not drawn again
