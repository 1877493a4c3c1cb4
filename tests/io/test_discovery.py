from __future__ import annotations

import logging
from pathlib import Path

import pytest

from niftykit.errors import DataError
from niftykit.io import Subject, find_files, match_subjects, read_file_list


def touch(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")
    return folder


def test_contains_keyword_is_removed_from_the_id(tmp_path):
    folder = touch(tmp_path, "100_CT.nii", "101_CT.nii.gz", "100_Label.nii")
    found = find_files([folder], ["CT"], source="ct")
    assert found == {"100_": folder / "100_CT.nii", "101_": folder / "101_CT.nii.gz"}


def test_removefromid_regex_replaces_keyword_removal(tmp_path):
    folder = touch(tmp_path, "sub1_T1.nii.gz", "sub2_T1.nii.gz", "sub1_T2.nii.gz")
    assert list(find_files([folder], ["T1"], filename_removefromid="_T1")) == ["sub1", "sub2"]
    assert list(find_files([folder], ["T2"], filename_removefromid=r"_T\d$")) == ["sub1"]


def test_not_contains_and_non_image_files_are_skipped(tmp_path):
    folder = touch(tmp_path, "a_CT.nii.gz", "a_CT_old.nii.gz", "notes_CT.txt", "b_CT.img", "b_CT.hdr")
    (folder / "c_CT.nii.gz").mkdir()
    found = find_files([folder], ["CT"], ["old"], source="ct")
    assert found == {"a_": folder / "a_CT.nii.gz", "b_": folder / "b_CT.hdr"}


def test_without_keywords_the_id_is_the_stem(tmp_path):
    folder = touch(tmp_path, "case01.nii.gz", "case02.mha", "case03.MGZ")
    assert list(find_files(folder)) == ["case01", "case02", "case03"]


def test_searches_several_folders_non_recursively(tmp_path):
    touch(tmp_path / "a", "1_CT.nii")
    touch(tmp_path / "b", "2_CT.nii")
    touch(tmp_path / "b" / "deeper", "3_CT.nii")
    assert list(find_files([tmp_path / "a", tmp_path / "b"], ["CT"])) == ["1_", "2_"]


def test_duplicate_id_names_both_files(tmp_path):
    folder = touch(tmp_path, "x_CT.nii", "x_CT.nii.gz")
    with pytest.raises(DataError, match=r"'ct'.*x_CT\.nii and .*x_CT\.nii\.gz.*'x_'"):
        find_files([folder], ["CT"], source="ct")


def test_missing_folder_names_source_and_folder(tmp_path):
    with pytest.raises(DataError, match=r"input source 'ct': folder .*nowhere does not exist"):
        find_files([tmp_path / "nowhere"], ["CT"], source="ct")


def test_no_match_names_source_folder_and_keywords(tmp_path):
    touch(tmp_path, "1_MR.nii")
    with pytest.raises(DataError, match=r"'ct': no image file in .* containing \['CT'\]"):
        find_files([tmp_path], ["CT"], source="ct")


def test_empty_id_is_an_error(tmp_path):
    touch(tmp_path, "CT.nii")
    with pytest.raises(DataError, match=r"CT\.nii gives an empty subject id"):
        find_files([tmp_path], ["CT"], source="ct")


def test_bad_regex_is_reported(tmp_path):
    touch(tmp_path, "1_CT.nii")
    with pytest.raises(DataError, match=r"filename_removefromid '\(' is not a valid"):
        find_files([tmp_path], ["CT"], filename_removefromid="(", source="ct")


def test_file_list_resolves_relative_paths_and_tolerates_header(tmp_path):
    touch(tmp_path / "img", "a.nii.gz", "b.nii.gz")
    csv_file = tmp_path / "lists" / "ct.csv"
    csv_file.parent.mkdir()
    absolute = tmp_path / "img" / "b.nii.gz"
    csv_file.write_text(f"subject_id,path\na,../img/a.nii.gz\n\nb, {absolute}\n")
    assert read_file_list(csv_file, source="ct") == {"a": csv_file.parent / "../img/a.nii.gz", "b": absolute}


def test_file_list_missing_file_names_the_row(tmp_path):
    csv_file = tmp_path / "ct.csv"
    csv_file.write_text("a,missing.nii.gz\n")
    with pytest.raises(DataError, match=r"ct\.csv line 1: subject 'a': file .*missing\.nii\.gz does not exist"):
        read_file_list(csv_file, source="ct")


def test_file_list_bad_row_and_missing_csv(tmp_path):
    csv_file = tmp_path / "ct.csv"
    csv_file.write_text("a,b,c\n")
    with pytest.raises(DataError, match=r"line 1: expected two columns"):
        read_file_list(csv_file)
    with pytest.raises(DataError, match=r"other\.csv does not exist"):
        read_file_list(tmp_path / "other.csv")


def test_match_subjects_inner_join_sorted():
    sources = {"ct": {"2": Path("2_CT"), "1": Path("1_CT")}, "label": {"1": Path("1_L"), "2": Path("2_L")}}
    subjects = match_subjects(sources)
    assert subjects == [
        Subject("1", {"ct": Path("1_CT"), "label": Path("1_L")}),
        Subject("2", {"ct": Path("2_CT"), "label": Path("2_L")}),
    ]


def test_missing_source_warns_once_with_ids(caplog):
    sources = {"ct": {"1": Path("a"), "2": Path("b"), "3": Path("c")}, "label": {"1": Path("d"), "4": Path("e")}}
    with caplog.at_level(logging.WARNING, logger="niftykit"):
        subjects = match_subjects(sources)
    assert [s.id for s in subjects] == ["1"]
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "2 (lacks label)" in message and "3 (lacks label)" in message and "4 (lacks ct)" in message


def test_missing_source_warning_is_shortened(caplog):
    sources = {"ct": {str(i): Path("x") for i in range(30)}, "label": {"0": Path("y")}}
    with caplog.at_level(logging.WARNING, logger="niftykit"):
        match_subjects(sources)
    assert "and 19 more" in caplog.records[0].getMessage()


def test_missing_source_strict_raises():
    sources = {"ct": {"1": Path("a"), "2": Path("b")}, "label": {"1": Path("c")}}
    with pytest.raises(DataError, match=r"2 \(lacks label\)"):
        match_subjects(sources, strict=True)


def test_no_common_subject_names_sources():
    sources = {"ct": {"100_": Path("a")}, "label": {"100": Path("b")}}
    with pytest.raises(DataError, match=r"input sources ct, label .*'ct' has 100_"):
        match_subjects(sources)
