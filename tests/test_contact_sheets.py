"""Contact sheets (`calibration.contact_sheets`): one per identity, drawn by the shipped renderer,
written only outside the repository."""

from __future__ import annotations

import sys

import cv2
import pytest

from calibration import contact_sheets
from calibration.identities import PROJECT, SHEET_TILE, load_identities


def test_a_sheet_per_identity_with_the_poses_and_a_spoken_strip(tmp_path):
    written = contact_sheets.write_sheets({"portrait": load_identities()["portrait"]}, tmp_path)
    sheet = cv2.imread(str(written[0]))
    assert written == [tmp_path / "portrait.jpg"]
    # the photo and rest, aa, oh, ee, PP, FF, TH; below them as many frames of the spoken sentence
    assert sheet.shape[:2] == (2 * SHEET_TILE, (1 + len(contact_sheets.POSES)) * SHEET_TILE)


def test_sheets_are_never_written_into_the_repository(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["contact_sheets", "--out", str(PROJECT / "sheets")])
    with pytest.raises(SystemExit):
        contact_sheets.main()
    assert "inside the repository" in capsys.readouterr().err
    assert not (PROJECT / "sheets").exists()
