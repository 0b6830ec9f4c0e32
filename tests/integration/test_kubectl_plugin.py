"""``kubectl payscope`` against the real kube-apiserver: every verb, run as kubectl runs a plugin.

Each test has a namespace of its own with PayScopeDeployments whose status is
written through the status subresource, built as a pass builds it
(``reconcile.report.build``) from results of the real catalog, two hours old. The
plugin runs as ``kubectl payscope ...``: kubectl finds ``kubectl-payscope`` on the
PATH, as it does on a user's machine. Changes (pause, waive) are read back from the
API server, whose admission validates them against the CRD's schema. The HTML
report is opened in headless Chromium. ``tests/e2e/test_installation.py`` runs the
plugin against a status the operator wrote itself.
"""

from __future__ import annotations

import datetime
import json
import os
import pty
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from payscope_operator.api import conditions, crd, status
from payscope_operator.audit import catalog, checklist, document
from payscope_operator.reconcile import readiness, report
from tests import browser
from tests.conftest import unique
from tests.e2e import cluster

CS = status.CheckStatus
BIN = Path(sys.executable).parent
WAIVER = {"check": "C.dlq.depth", "reason": "replaying after the 2.3 outage", "expires": "2099-01-31"}
SPEC: dict[str, Any] = {"workloads": {"api": {"name": "payscope-api"}}, "audit": {"waivers": [WAIVER]}}
FAILING = {
    "F.metrics.agents": CS.FAIL,
    "G.jwt.expired": CS.FAIL,
    "C.broker.reachable": CS.UNKNOWN,
    "C.dlq.depth": CS.WAIVED,
    "D.forecast.stable": CS.WARN,
}
PLAN = ("postgres: create index CONCURRENTLY payscope_transactions_bank_id on public.transactions (bank_id)",)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def crd_installed(kube_api: k8s.ApiClient) -> None:
    cluster.install_crd(kube_api)


def _status(overrides: dict[str, CS], at: datetime.datetime) -> dict[str, Any]:
    results = tuple(
        status.CheckResult(
            id=c.id,
            dimension=c.dimension,
            status=overrides.get(c.id, CS.PASS),
            severity=c.severity,
            reason="Evaluated",
            message=f"{c.id}: what the probe found",
        )
        for c in catalog.CATALOG
    )
    provisioned = readiness.Provisioning(status.ConditionStatus.TRUE, conditions.Reason.PROVISIONED, "ok")
    draft = report.Draft(readiness.Facts(1, results, provisioned), checks=results, preview=PLAN)
    return report.to_wire(report.build(draft, previous=None, now=at))


def _create(api: k8s.ApiClient, namespace: str, name: str, overrides: dict[str, CS]) -> None:
    cluster.create_psd(api, namespace, name, SPEC)
    two_hours_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2, minutes=1)
    k8s.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        crd.GROUP, crd.VERSION, namespace, crd.PLURAL, name, {"status": _status(overrides, two_hours_ago)}
    )


@pytest.fixture
def installations(kube_api: k8s.ApiClient, crd_installed: None, namespace: str) -> Iterator[str]:
    """Two resources in ``namespace``: ``healthy`` (every check passes) and ``failing`` (FAILING)."""
    _create(kube_api, namespace, "healthy", {})
    _create(kube_api, namespace, "failing", FAILING)
    try:
        yield namespace
    finally:
        for name in ("healthy", "failing"):
            cluster.delete_psd(kube_api, namespace, name)


def kubectl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``kubectl ARGS`` with the virtualenv's bin first on the PATH, where kubectl finds the plugin."""
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(
        [str(BIN / "kubectl"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PATH": path, **(env or {})},
    )


def _ok(*args: str) -> str:
    done = kubectl("payscope", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_status_lists_each_resource_with_state_and_score_per_dimension(installations: str) -> None:
    out = _ok("status", "-n", installations)
    lines = out.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == [
        "NAME", "READY", "REASON", "INFRA", "DATA", "PIPELINE", "AGENTS", "APIS", "OBSERV", "SECURITY", "AGE",
    ]  # fmt: skip
    rows = {re.split(r"\s{2,}", line)[0]: re.split(r"\s{2,}", line) for line in lines[1:3]}
    assert rows["healthy"][1:10] == ["True", "AllChecksPassed", *["ok 100"] * 7]
    failing = rows["failing"]
    assert failing[1:3] == ["False", "ChecksFailing"]
    assert failing[5].startswith("unknown ")  # Pipeline: C.broker.reachable Unknown
    assert re.fullmatch(r"fail \d+", failing[8])  # Observability
    assert re.fullmatch(r"fail \d+", failing[9])  # Security
    assert len(lines) == 3, "two resources: no detail section"
    assert "\x1b[" not in out, "piped output has no colour"


def test_status_across_namespaces_adds_the_namespace_column(installations: str) -> None:
    out = _ok("status", "-A")
    assert out.splitlines()[0].startswith("NAMESPACE")
    mine = [line for line in out.splitlines() if line.startswith(installations)]
    assert [re.split(r"\s{2,}", line)[1] for line in mine] == ["failing", "healthy"]


def test_all_namespaces_takes_no_namespace_or_name() -> None:
    done = kubectl("payscope", "status", "-A", "-n", "default")
    assert done.returncode == 2
    assert "-A lists every namespace" in done.stderr


def test_status_of_one_resource_lists_its_failing_and_unknown_checks_by_dimension(installations: str) -> None:
    out = _ok("status", "failing", "-n", installations)
    assert "Pipeline: PipelineReady Unknown (ChecksUnknown)" in out
    assert "Observability: ObservabilityReady False (ChecksFailing)" in out
    assert "Security: SecurityReady False (ChecksFailing)" in out
    rows = {re.split(r"\s{2,}", line.strip())[0]: re.split(r"\s{2,}", line.strip()) for line in out.splitlines()}
    assert rows["F.metrics.agents"][:4] == ["F.metrics.agents", "Fail", "Medium", "Inferred"]
    assert rows["G.jwt.expired"][:4] == ["G.jwt.expired", "Fail", "Critical", "Observed"]
    assert re.fullmatch(r"2h\d{1,2}m", rows["G.jwt.expired"][4]), "failing for two hours and a minute or so"
    assert rows["C.broker.reachable"][1] == "Unknown"
    assert rows["G.jwt.expired"][5] == "G.jwt.expired: what the probe found"
    assert "C.dlq.depth" not in rows, "waived checks are counted, not listed"
    assert "D.forecast.stable" not in rows, "warnings are counted, not listed"
    assert re.search(r"Also \d+ pass, 1 warn, 1 waived\.", out)


def test_status_is_coloured_on_a_terminal_and_plain_when_piped(installations: str) -> None:
    leader, follower = pty.openpty()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("NO_COLOR", None)
    with subprocess.Popen(
        [str(BIN / "kubectl"), "payscope", "status", "failing", "-n", installations],
        stdout=follower,
        stderr=subprocess.PIPE,
        env=env,
    ) as proc:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed when the plugin exited
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(timeout=60) == 0
    os.close(leader)
    shown = b"".join(chunks).decode()
    assert "\x1b[31mFail\x1b[0m" in shown
    assert "\x1b[32mok 100\x1b[0m" in shown
    assert "\x1b[" not in _ok("status", "failing", "-n", installations)


def test_status_as_json(installations: str) -> None:
    items = {i["name"]: i for i in json.loads(_ok("status", "-n", installations, "-o", "json"))["items"]}
    failing = items["failing"]
    assert failing["ready"]["reason"] == "ChecksFailing"
    assert failing["dimensions"]["Observability"]["status"] == "False"
    assert items["healthy"]["dimensions"]["Security"] == {"status": "True", "reason": "AllChecksPassed", "score": 100}
    checks = {c["id"]: c for c in failing["checks"]}
    assert set(checks) == {"F.metrics.agents", "G.jwt.expired", "C.broker.reachable"}
    assert checks["G.jwt.expired"]["grade"] == "Observed"
    assert 7200 <= checks["G.jwt.expired"]["forSeconds"] < 7200 + 600
    assert items["healthy"]["checks"] == []


def test_report_follows_the_checklist_with_the_live_results(installations: str) -> None:
    out = _ok("report", "failing", "-n", installations)
    box = re.compile(r"^- \[( |x)\] (.+?)(?: — (.+))?$")
    found = [(m.group(1), m.group(2), m.group(3)) for line in out.splitlines() if (m := box.match(line))]
    items = [i for i in checklist.load().items() if not i.is_status_line]
    assert found[0][:2] == (" ", "**Status:** NOT READY (ChecksFailing)")
    assert [text for _, text, _ in found[1:]] == [i.text for i in items]
    assert len(items) == len(document.checklist_items((REPO / "docs" / "audit-checklist.md").read_text()))
    states = {text: (tick, state) for tick, text, state in found[1:]}
    assert states["Expiry checking"] == (" ", "Failing")
    assert states["Signature verification"] == ("x", "Passed")
    assert states["Agent metrics"] == (" ", "Failing")
    assert states["docker-compose.yml file exists"] == (" ", "Not observable")
    assert states["Dead letter queue"][1] in ("Waived", "Unknown", "Failing")
    assert "  - `G.jwt.expired` **Fail** · Critical · Observed · since " in out
    assert "| `C.dlq.depth` | replaying after the 2.3 outage | 2099-01-31 | `C.dlq.depth` |" in out
    assert f"installation `{installations}/failing` (generation 1, observed generation 1)" in out


def test_report_as_html_renders_in_chromium_with_its_title(installations: str, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    done = kubectl("payscope", "report", "failing", "-n", installations, "--format", "html", "-o", str(page))
    assert done.returncode == 0, done.stderr
    assert f"wrote html report of {installations}/failing to {page}" in done.stderr
    if browser.chromium() is None:
        pytest.skip(browser.MISSING)
    rendered = browser.render(page, tmp_path / "report.png")
    facts = browser.png_facts(rendered.screenshot)
    assert (facts.width, facts.height) == (1000, 750)
    assert rendered.screenshot.stat().st_size > 20_000
    assert facts.colours > 50, "a page of text and badges, not a blank or uniform image"
    assert '<h1 id="title">PayScope Production Readiness Audit Report</h1>' in rendered.dom
    assert "NOT READY (ChecksFailing)" in rendered.dom
    assert rendered.dom.count("&#9744;") + rendered.dom.count("☐") >= 3


def test_explain_says_what_a_check_probes_and_how_to_fix_it() -> None:
    out = _ok("explain", "G.jwt.expired")
    assert out.startswith("G.jwt.expired: Security (G), severity Critical, evidence Observed\n")
    assert "Pass means:  The valid call gets through and each probe is refused with 401" in out
    assert "Checklist:   G/JWT/Expiry checking; E/Bank Isolation/JWT validation" in out
    assert "How to fix:  Verify exp (at most a minute of leeway) and answer 401 for an expired token." in out
    unknown = kubectl("payscope", "explain", "G.jwt.expird")
    assert unknown.returncode == 2
    assert "did you mean G.jwt.expired" in unknown.stderr


def test_plan_prints_what_full_management_would_do(installations: str) -> None:
    out = _ok("plan", "failing", "-n", installations)
    assert out.splitlines() == [
        f"{installations}/failing: managementPolicy Full",
        "1 action(s) Full management would take (nothing applied):",
        f"  {PLAN[0]}",
    ]


def test_pause_and_resume_set_and_remove_the_annotation(kube_api: k8s.ApiClient, installations: str) -> None:
    assert "paused" in _ok("pause", "healthy", "-n", installations)
    annotations = cluster.psd(kube_api, installations, "healthy")["metadata"].get("annotations") or {}
    assert annotations.get("payscope.io/paused") == "true"
    assert "(paused)" in _ok("plan", "healthy", "-n", installations).splitlines()[0]
    assert "resumed" in _ok("resume", "healthy", "-n", installations)
    annotations = cluster.psd(kube_api, installations, "healthy")["metadata"].get("annotations") or {}
    assert "payscope.io/paused" not in annotations


def _waivers(api: k8s.ApiClient, namespace: str, name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cluster.psd(api, namespace, name)["spec"].get("audit", {}).get("waivers", [])
    return found


def test_waive_adds_or_replaces_a_waiver_the_api_server_admits(kube_api: k8s.ApiClient, installations: str) -> None:
    out = _ok("waive", "failing", "F.metrics.agents", "--reason", "ships in 2.4", "--until", "2099-03-01", "-n",
              installations)  # fmt: skip
    assert "waived F.metrics.agents until 2099-03-01: ships in 2.4" in out
    assert _waivers(kube_api, installations, "failing") == [
        WAIVER,
        {"check": "F.metrics.agents", "reason": "ships in 2.4", "expires": "2099-03-01"},
    ]
    _ok("waive", "failing", "C.dlq.depth", "--reason", "extended", "--until", "2099-06-30", "-n", installations)
    assert _waivers(kube_api, installations, "failing")[0] == {
        "check": "C.dlq.depth",
        "reason": "extended",
        "expires": "2099-06-30",
    }
    assert cluster.psd(kube_api, installations, "failing")["metadata"]["generation"] == 3


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("F.metrics.agent", "--until", "2099-01-01"), "unknown check id 'F.metrics.agent'"),
        (("Z.*", "--until", "2099-01-01"), "the pattern 'Z.*' matches no check"),
        (("F.metrics.agents", "--until", "2020-01-01"), "is in the past"),
        (("F.metrics.agents", "--until", "next week"), "--until must be a date YYYY-MM-DD"),
    ],
)
def test_waive_refuses_an_unknown_check_or_a_past_date_and_sends_nothing(
    kube_api: k8s.ApiClient, installations: str, args: tuple[str, ...], says: str
) -> None:
    before = cluster.psd(kube_api, installations, "failing")["metadata"]["resourceVersion"]
    done = kubectl("payscope", "waive", "failing", args[0], "--reason", "r", *args[1:], "-n", installations)
    assert done.returncode == 2
    assert says in done.stderr
    assert cluster.psd(kube_api, installations, "failing")["metadata"]["resourceVersion"] == before


def test_a_resource_that_does_not_exist_is_a_usage_error(installations: str) -> None:
    for verb in ("status", "report", "plan", "pause"):
        done = kubectl("payscope", verb, "nope", "-n", installations)
        assert done.returncode == 2, verb
        assert f'payscopedeployment "nope" not found in namespace "{installations}"' in done.stderr


def test_a_user_the_cluster_refuses_gets_the_reason_and_exit_1(
    kube_api: k8s.ApiClient, installations: str, tmp_path: Path
) -> None:
    account = unique("nobody-")
    k8s.CoreV1Api(kube_api).create_namespaced_service_account(
        installations, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name=account))
    )
    config = cluster.service_account_kubeconfig(kube_api, installations, account, tmp_path / "kubeconfig")
    done = kubectl("payscope", "status", "-n", installations, env={"KUBECONFIG": str(config)})
    assert done.returncode == 1
    assert "you may not list PayScopeDeployments" in done.stderr
    assert "HTTP 403" in done.stderr
