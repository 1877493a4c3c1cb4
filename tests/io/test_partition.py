from __future__ import annotations

import logging

import pytest

from niftykit.errors import DataError
from niftykit.io import load_or_create_split, subjects_in_phase

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
