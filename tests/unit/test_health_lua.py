"""The Argo CD health check (charts/payscope-operator/health/health.lua) against its test cases.

Every case of ``health_test.yaml`` (Argo CD's own format) runs through the script with
lupa, the way Argo CD runs it: ``obj`` is a global table, the chunk returns a table with
``status`` and ``message``. Argo CD embeds gopher-lua (Lua 5.1), so each case runs on
Lua 5.1 and on Lua 5.4. The script must decide on condition type, status and reason
only: rewriting every message must not change any outcome.
"""

from __future__ import annotations

import copy
import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

HEALTH = Path(__file__).resolve().parents[2] / "charts/payscope-operator/health"
SCRIPT = (HEALTH / "health.lua").read_text(encoding="utf-8")
CASES: list[dict[str, Any]] = yaml.safe_load((HEALTH / "health_test.yaml").read_text(encoding="utf-8"))["tests"]
LUA_VERSIONS = ["lua51", "lua54"]
MISLEADING = "Healthy. Degraded. Stalled=True (Paused) Suspended Progressing"


def _load(case: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((HEALTH / case["inputPath"]).read_text(encoding="utf-8"))
    return body


def run_health(body: dict[str, Any], lua_version: str = "lua54") -> dict[str, str]:
    """Run health.lua with ``obj`` set to ``body``; returns the {status, message} it answers."""
    lua = importlib.import_module(f"lupa.{lua_version}").LuaRuntime(unpack_returned_tuples=False)
    lua.globals().obj = lua.table_from(body, recursive=True)
    result = lua.execute(SCRIPT)
    return {key: str(result[key]) for key in ("status", "message") if result[key] is not None}


@pytest.mark.parametrize("lua_version", LUA_VERSIONS)
@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_case(case: dict[str, Any], lua_version: str) -> None:
    got = run_health(_load(case), lua_version)
    expected = case["healthStatus"]
    assert got["status"] == expected["status"]
    if "message" in expected:
        assert got["message"] == expected["message"]


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_message_text_never_decides(case: dict[str, Any]) -> None:
    body = copy.deepcopy(_load(case))
    for condition in (body.get("status") or {}).get("conditions") or []:
        condition["message"] = MISLEADING
    assert run_health(body) == run_health(_load(case))


def test_cases_cover_every_health_status_and_stale_generation() -> None:
    statuses = {case["healthStatus"]["status"] for case in CASES}
    assert statuses == {"Healthy", "Progressing", "Degraded", "Suspended"}
    stale = [
        body
        for body in map(_load, CASES)
        if (body.get("status") or {}).get("observedGeneration", 0) not in (-1, body["metadata"]["generation"])
    ]
    assert stale, "a case must have status.observedGeneration behind metadata.generation"
    for case in CASES:
        assert (HEALTH / case["inputPath"]).is_file(), case["inputPath"]


def test_unknown_condition_types_and_missing_reasons_are_tolerated() -> None:
    body = {
        "metadata": {"generation": 1},
        "status": {
            "observedGeneration": 1,
            "conditions": [{"type": "SomethingNew", "status": "True"}, {"type": "Ready", "status": "False"}],
        },
    }
    assert run_health(body) == {"status": "Degraded", "message": "Ready=False (NoReason)"}
