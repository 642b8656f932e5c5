"""Cases of a cohort: a folder of cases, a manifest CSV, case names."""

from __future__ import annotations

from pathlib import Path

import pytest

from liverseg.cohort.cases import Case, case_name, discover_cases, is_cohort_input, is_url, read_manifest
from liverseg.errors import InputError


def test_folder_of_cases_sorted_with_names(tmp_path: Path) -> None:
    (tmp_path / "b.nii.gz").write_bytes(b"x")
    (tmp_path / "a.nrrd").write_bytes(b"x")
    (tmp_path / "c.zip").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / ".hidden.nii.gz").write_bytes(b"x")
    (tmp_path / "d_dicom").mkdir()
    cases = discover_cases(tmp_path)
    assert [c.name for c in cases] == ["a", "b", "c", "d_dicom"]
    assert cases[1].input == str(tmp_path / "b.nii.gz")
    assert is_cohort_input(tmp_path)


def test_a_dicom_folder_is_one_case_not_a_cohort(tmp_path: Path) -> None:
    (tmp_path / "IM0001.dcm").write_bytes(b"x")
    (tmp_path / "IM0002").write_bytes(b"x")
    assert not is_cohort_input(tmp_path)
    assert not is_cohort_input(tmp_path / "IM0001.dcm")


def test_manifest_paths_relative_urls_and_case_column(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    manifest = tmp_path / "sub" / "cohort.csv"
    manifest.write_text(
        "\ufeffpath,case,site\n"  # a BOM, as Excel writes it
        "../ct1.nii.gz,,A\n"
        "/abs/ct2.nii.gz,patient-2,B\n"
        "s3://bucket/trial/ct3.nii.gz,,C\n"
    )
    cases = read_manifest(manifest)
    assert cases == [
        Case("ct1", str(tmp_path / "ct1.nii.gz")),  # normalised, symbolic links kept
        Case("patient-2", "/abs/ct2.nii.gz"),
        Case("ct3", "s3://bucket/trial/ct3.nii.gz"),
    ]
    assert is_cohort_input(manifest) and discover_cases(manifest) == cases


@pytest.mark.parametrize(
    "text, expected",
    [
        ("file,case\na.nii.gz,a\n", "'path' column"),
        ("path\n", "lists no case"),
        ('path\na.nii.gz\n""\n', "line 3: empty 'path'"),
        ("path\nx/a.nii.gz\ny/a.nii.gz\n", "repeated: ['a']"),
        ("path,case\na.nii.gz,../evil\n", "path separator"),
        ("path,case\na.nii.gz,.hidden\n", "not start with '.'"),
    ],
)
def test_bad_manifest_is_one_clear_error(tmp_path: Path, text: str, expected: str) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(text)
    with pytest.raises(InputError) as info:
        read_manifest(manifest)
    assert expected in str(info.value) and str(manifest) in str(info.value)


def test_same_name_from_two_suffixes_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.nii").write_bytes(b"x")
    (tmp_path / "a.nii.gz").write_bytes(b"x")
    with pytest.raises(InputError, match=r"repeated: \['a'\]"):
        discover_cases(tmp_path)


def test_names_and_urls() -> None:
    assert case_name("/x/CT_01.nii.gz") == "CT_01"
    assert case_name("s3://b/series_7/") == "series_7"
    assert case_name("study.ZIP") == "study"
    assert is_url("gs://b/k") and is_url("file:///tmp/a") and not is_url("/tmp/a") and not is_url("C:/a")
