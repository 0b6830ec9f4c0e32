"""The standalone audit's exit codes: what a release pipeline gates on.

``payscope-operator audit -f FILE`` runs the real reconciler against the
in-memory cluster; these specs need no server, so the tests are exact: an
invalid file is 2, and an audit that looked at whole dimensions of nothing is
3 unless a waiver accepts it, never a silent 0.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import yaml

from payscope_operator import standalone

ALL = "ABCDEFG"


def _audit(tmp_path: Path, spec: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "psd.yaml"
    body = {"apiVersion": "payscope.io/v1alpha1", "kind": "PayScopeDeployment", "metadata": {"name": "p"}}
    path.write_text(yaml.safe_dump({**body, "spec": spec}))
    args = argparse.Namespace(
        command="audit", filename=str(path), secrets_from_env=False, secrets_file=None, output="table"
    )
    code = standalone.main(args)
    return code, capsys.readouterr().err


def _waivers(letters: str) -> dict[str, Any]:
    listed = [{"check": f"{letter}.*", "reason": "not here", "expires": "2099-12-31"} for letter in letters]
    return {"audit": {"waivers": listed}}


def test_an_empty_spec_is_an_incomplete_audit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _audit(tmp_path, {}, capsys)
    assert code == 3
    assert "incomplete audit: Not audited, no check configured: Infrastructure, DataLayer" in err


def test_waiving_some_dimensions_still_names_the_rest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _audit(tmp_path, _waivers("ABCDEF"), capsys)
    assert code == 3
    assert "no check configured: Security." in err


def test_nothing_audited_is_never_a_pass_even_when_all_is_waived(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _audit(tmp_path, _waivers(ALL), capsys)
    assert code == 3
    assert "The spec configures nothing to audit." in err


def test_an_invalid_file_is_still_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = _audit(
        tmp_path, {"audit": {"waivers": [{"check": "D.x.*", "reason": "r", "expires": "2099-01-01"}]}}, capsys
    )
    assert code == 2


def test_the_table_shows_each_checks_grade(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "psd.yaml"
    path.write_text(yaml.safe_dump({"redis": {"connection": {"secretRef": {"name": "r", "key": "url"}}}}))
    args = argparse.Namespace(command="audit", filename=str(path), secrets_from_env=False, secrets_file=None)
    standalone.main(args)
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:4] == ["CHECK", "STATUS", "SEVERITY", "GRADE"]
