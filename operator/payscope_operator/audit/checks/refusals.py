"""Judging PayScope's answers to the access probes: refused, and with the status the probe's record expects.

Why this module exists: fourteen G checks ask the same question of different
probes (``probes``): did PayScope refuse each of these calls, with the status
contract version 1 requires? A refusal proves something only if the audit's valid
token gets through, so every judgement first looks at the baseline probe.

What it must not do: decide which probes a check judges (the check passes them
in), put a token into a message (messages name the probe, endpoint and status),
or do I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from payscope_operator.audit import probes, registry
from payscope_operator.audit.sources import payscope_api
from payscope_operator.backends.payscope_api import client as api_client

Finding = registry.Finding
REFUSALS = frozenset({400, 401, 403})
"""Statuses that count as a refusal; anything else (2xx, 404, 422, 5xx) means the call got through."""
REFUSED_401 = "The valid call gets through and each probe is refused with 401 (another 4xx: Warn)."


def _label(probe: probes.Probe, reply: api_client.Reply) -> str:
    return f"{probe.label} ({reply.describe()})"


def calls(sent: Sequence[probes.Probe]) -> str:
    """What a check on ``sent`` probes, for its title."""
    return f"Calls with {probes.labels(sent)}, next to one with the audit's valid token."


def refused(
    evidence: payscope_api.AccessEvidence, sent: Sequence[probes.Probe], fix: str, *, warn: bool = False
) -> Finding:
    """Pass when every probe in ``sent`` is refused with the status its record expects; another refusal warns.

    A probe that gets through fails the check (or warns, with ``warn``).
    """
    baseline = evidence.reply(probes.BASELINE)
    if baseline.status is None:
        return Finding.unknown(payscope_api.explain(baseline))
    if baseline.status in REFUSALS:
        return Finding.unknown(
            f"PayScope refuses the audit's valid token too ({baseline.describe()}), so a refusal proves nothing: "
            "make spec.api.auth (key, algorithm, issuer, audience) match PayScope's."
        )
    answered = [(probe, evidence.reply(probe)) for probe in sent]
    silent = [reply for _, reply in answered if reply.status is None]
    if silent:
        return Finding.unknown(payscope_api.explain(silent[0]))
    where = "; ".join(_label(probe, reply) for probe, reply in answered)
    through = [_label(probe, reply) for probe, reply in answered if reply.status not in REFUSALS]
    if through:
        message = f"PayScope let through {', '.join(through)}: {fix}"
        return Finding.warned(message, evidence=where) if warn else Finding.failed(message, evidence=where)
    off = [(probe, reply) for probe, reply in answered if reply.status != probe.expect]
    if off:
        expected = "/".join(str(code) for code in sorted({probe.expect for probe, _ in off}))
        shown = ", ".join(_label(probe, reply) for probe, reply in off)
        return Finding.warned(f"PayScope refused {shown}, but contract version 1 says {expected}.", evidence=where)
    codes = "/".join(str(code) for code in sorted({probe.expect for probe in sent}))
    return Finding.passed(f"PayScope refuses {probes.labels(sent)} with {codes}.", evidence=where)
