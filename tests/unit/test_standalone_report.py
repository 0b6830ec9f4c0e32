"""``payscope-operator audit --output markdown``: the readiness report from a file, for a CI job to attach.

A resource that declares only a waiver audits nothing (every check NotConfigured,
no server needed), which is enough to see the document's shape and the waiver in
it; ``tests/e2e/test_installation.py`` runs it against a whole installation with
a check failing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from payscope_operator import cli
from payscope_operator.audit import checklist, document

REPO = Path(__file__).resolve().parents[2]


def test_the_markdown_report_of_a_file_has_every_checkbox_and_its_waivers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    resource = {
        "apiVersion": "payscope.io/v1alpha1",
        "kind": "PayScopeDeployment",
        "metadata": {"name": "ci-audit", "namespace": "release"},
        "spec": {
            "audit": {"waivers": [{"check": "F.metrics.agents", "reason": "ships in 2.4", "expires": "2099-01-31"}]}
        },
    }
    path = tmp_path / "psd.yaml"
    path.write_text(yaml.safe_dump(resource))
    code = cli.main(["audit", "-f", str(path), "--output", "markdown"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("# PayScope Production Readiness Audit Report\n")
    assert "installation `release/ci-audit`" in out
    keys = document.checklist_items((REPO / "docs" / "audit-checklist.md").read_text())
    items = [i for i in checklist.load().items() if not i.is_status_line]
    assert [i.key for i in items] == keys
    for item in items:
        assert f"- [ ] {item.text} — " in out, item.key
    assert "- [ ] Secrets handling (JWT keys, API keys) — Not audited" in out
    assert "| `F.metrics.agents` | ships in 2.4 | 2099-01-31 | `F.metrics.agents` |" in out
