"""The send-list trigger form when the member mapping cannot be read: it says so, with the file and
line, where the Segment dropdown would be, instead of quietly becoming a free-text box."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from include.airflow_env import PROJECT_ROOT

DAG_FILE = PROJECT_ROOT / "dags" / "constant_contact_send_list.py"
DEMO_MAPPING = PROJECT_ROOT / "include" / "config" / "member_mapping.yaml"


def _parse(monkeypatch: pytest.MonkeyPatch, mapping: Path) -> dict:
    monkeypatch.setenv("CC_SYNC_MAPPING", str(mapping))
    return runpy.run_path(str(DAG_FILE))


def test_a_broken_mapping_is_named_in_the_form(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    broken = tmp_path / "mapping.yaml"
    broken.write_text(DEMO_MAPPING.read_text().replace("table: members", "table: [members"))

    dag = _parse(monkeypatch, broken)["dag"]

    segment = dag.params.get_param("segment")
    assert "The member mapping cannot be read" in segment.description
    assert f"{broken}, line" in segment.description
    assert "enum" not in segment.schema
    assert dag.description.startswith("NOT USABLE: ")


def test_a_missing_mapping_file_is_named_in_the_form(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    dag = _parse(monkeypatch, tmp_path / "nowhere.yaml")["dag"]
    assert "nowhere.yaml" in dag.params.get_param("segment").description


def test_a_good_mapping_offers_its_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    dag = _parse(monkeypatch, DEMO_MAPPING)["dag"]
    segment = dag.params.get_param("segment")
    assert "runners" in segment.schema["enum"]
    assert "cannot be read" not in segment.description
