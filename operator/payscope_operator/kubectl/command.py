"""``kubectl payscope VERB``: parse the command line, read or change PayScopeDeployments, print.

Verbs: ``status [NAME] [-n NS | -A] [-o json]``, ``report NAME [--format markdown|html]
[-o FILE]``, ``explain CHECK_ID``, ``plan NAME``, ``pause NAME``, ``resume NAME``,
``waive NAME CHECK_ID --reason ... --until YYYY-MM-DD``. The cluster is the one of
the user's kubeconfig (``--kubeconfig``, ``--context``, or ``$KUBECONFIG``), the
namespace the context's unless ``-n`` names one, as with kubectl. Exit codes: 0
done, 1 a Kubernetes error (permission, unreachable, refused by the API server),
2 a usage error (an unknown check, a past date, a resource that does not exist).

What it must not do: decide what a view shows or what a patch holds (``status_view``,
``explain``, ``edits``, ``audit.verdicts`` do), or write the status.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from payscope_operator import __version__, errors
from payscope_operator.api import status
from payscope_operator.audit import report_html, report_markdown, verdicts
from payscope_operator.kube import resources
from payscope_operator.kubectl import edits, explain, status_view, terminal

Json = dict[str, Any]


class UsageError(Exception):
    """A mistake on the command line or a resource that does not exist: exit 2."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _connect(args: argparse.Namespace) -> tuple[resources.Resources, str]:
    cluster = resources.Resources.from_kubeconfig(args.kubeconfig, args.context)
    return cluster, args.namespace or cluster.default_namespace


def _get(cluster: resources.Resources, namespace: str, name: str) -> Json:
    found = cluster.get(namespace, name)
    if found is None:
        raise UsageError(f'payscopedeployment "{name}" not found in namespace "{namespace}"')
    return found


def _status(args: argparse.Namespace, out: TextIO) -> int:
    if args.all_namespaces and (args.namespace or args.name):
        raise UsageError("-A lists every namespace: give it neither -n nor a NAME")
    cluster, namespace = _connect(args)
    try:
        if args.name:
            objects = [_get(cluster, namespace, args.name)]
        else:
            objects = cluster.list(None if args.all_namespaces else namespace)
    finally:
        cluster.close()
    views = [status_view.overview(o) for o in objects]
    now = _now()
    if args.output == "json":
        out.write(json.dumps(status_view.as_json(views, now), indent=2) + "\n")
        return 0
    if not views:
        where = "any namespace" if args.all_namespaces else f"namespace {namespace}"
        out.write(f"No PayScopeDeployments found in {where}.\n")
        return 0
    palette = terminal.Palette.for_stream(out)
    lines = status_view.summary_lines(views, now, palette, namespaces=bool(args.all_namespaces))
    if len(views) == 1:
        lines += status_view.detail_lines(views[0], now, palette)
    out.write("\n".join(lines) + "\n")
    return 0


def subject_of(obj: Json) -> verdicts.Subject:
    """What the report needs of a resource as the API server returned it."""
    view = status_view.overview(obj)
    if view.problem:
        raise UsageError(f"{view.namespace}/{view.name}: {view.problem}")
    meta = obj.get("metadata") or {}
    return verdicts.Subject(
        namespace=view.namespace,
        name=view.name,
        status=view.held,
        waivers=verdicts.waivers_of(obj.get("spec") or {}),
        generation=meta.get("generation"),
        paused=edits.is_paused(obj),
        desired=verdicts.spec_of(obj.get("spec") or {}),
    )


def _report(args: argparse.Namespace, out: TextIO) -> int:
    cluster, namespace = _connect(args)
    try:
        obj = _get(cluster, namespace, args.name)
    finally:
        cluster.close()
    built = verdicts.build(subject_of(obj), now=_now())
    text = report_html.render(built) if args.format == "html" else report_markdown.render(built)
    if args.output_file:
        Path(args.output_file).write_text(text, encoding="utf-8")
        print(f"wrote {args.format} report of {namespace}/{args.name} to {args.output_file}", file=sys.stderr)
    else:
        out.write(text)
    return 0


def _explain(args: argparse.Namespace, out: TextIO) -> int:
    try:
        out.write("\n".join(explain.lines(args.check_id)) + "\n")
    except explain.UnknownCheck as exc:
        hint = f"; did you mean {', '.join(exc.suggestions)}?" if exc.suggestions else ""
        raise UsageError(f"unknown check id {exc.check_id!r}{hint}") from None
    return 0


def _plan(args: argparse.Namespace, out: TextIO) -> int:
    cluster, namespace = _connect(args)
    try:
        obj = _get(cluster, namespace, args.name)
    finally:
        cluster.close()
    view = status_view.overview(obj)
    policy = (obj.get("spec") or {}).get("managementPolicy", "Full")
    paused = " (paused)" if edits.is_paused(obj) else ""
    held = view.held
    lines = [f"{namespace}/{args.name}: managementPolicy {policy}{paused}"]
    if held is None:
        lines.append("not reconciled yet: no plan in status.")
    elif held.plan:
        lines.append(f"{len(held.plan)} action(s) Full management would take (nothing applied):")
        lines += [f"  {line}" for line in held.plan]
    else:
        lines.append("no pending action: every declared object exists and matches (or is being applied).")
    provisioned = held.provisioned if held else None
    pending = [
        (system, o)
        for system in ("postgres", "neo4j", "pinecone", "object_storage")
        for o in (getattr(provisioned, system) if provisioned else ())
        if o.state != status.ProvisionState.READY
    ]
    if pending:
        lines.append("objects not Ready:")
        lines += [f"  {system}: {o.kind} {o.name} {o.state.value}: {o.message or ''}".rstrip() for system, o in pending]
    out.write("\n".join(lines) + "\n")
    return 0


def _annotate(args: argparse.Namespace, out: TextIO) -> int:
    cluster, namespace = _connect(args)
    try:
        _get(cluster, namespace, args.name)
        patch = edits.pause() if args.verb == "pause" else edits.resume()
        cluster.patch(namespace, args.name, patch)
    finally:
        cluster.close()
    done = "paused: the operator audits but changes no external system" if args.verb == "pause" else "resumed"
    out.write(f"payscopedeployment.payscope.io/{args.name} {done}\n")
    return 0


def _waive(args: argparse.Namespace, out: TextIO) -> int:
    try:
        new = edits.waiver(args.check_id, args.reason, args.until, today=_now().date())
    except edits.Refused as exc:
        raise UsageError(str(exc)) from None
    cluster, namespace = _connect(args)
    try:
        obj = _get(cluster, namespace, args.name)
        cluster.patch(namespace, args.name, edits.waive(obj, new))
    finally:
        cluster.close()
    out.write(f"payscopedeployment.payscope.io/{args.name} waived {new.check} until {new.expires}: {new.reason}\n")
    return 0


def _cluster_flags(parser: argparse.ArgumentParser, *, namespaced: bool = True) -> None:
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    if namespaced:
        parser.add_argument("-n", "--namespace", help="namespace (default: the context's)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="kubectl payscope", description="Read and steer PayScopeDeployments.")
    top.add_argument("--version", action="version", version=f"kubectl-payscope {__version__}")
    sub = top.add_subparsers(dest="verb", required=True)

    st = sub.add_parser("status", help="dimensions of every resource; failing checks of one")
    st.add_argument("name", nargs="?")
    _cluster_flags(st)
    st.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    st.add_argument("-o", "--output", choices=("text", "json"), default="text")
    st.set_defaults(func=_status)

    rp = sub.add_parser("report", help="the production-readiness audit report, in the checklist's shape")
    rp.add_argument("name")
    _cluster_flags(rp)
    rp.add_argument("--format", choices=("markdown", "html"), default="markdown")
    rp.add_argument("-o", "--output", dest="output_file", metavar="FILE", help="write to FILE instead of stdout")
    rp.set_defaults(func=_report)

    ex = sub.add_parser("explain", help="what a check probes, what Pass means, how to fix it")
    ex.add_argument("check_id")
    ex.set_defaults(func=_explain)

    pl = sub.add_parser("plan", help="what Full management would change (ObserveOnly or paused), objects not Ready")
    pl.add_argument("name")
    _cluster_flags(pl)
    pl.set_defaults(func=_plan)

    for verb, text in (("pause", "stop changing external systems (audits go on)"), ("resume", "undo pause")):
        cmd = sub.add_parser(verb, help=text)
        cmd.add_argument("name")
        _cluster_flags(cmd)
        cmd.set_defaults(func=_annotate)

    wv = sub.add_parser("waive", help="accept a failing check until a date (spec.audit.waivers)")
    wv.add_argument("name")
    wv.add_argument("check_id", help="a check id, or a pattern such as D.* where the spec accepts one")
    wv.add_argument("--reason", required=True)
    wv.add_argument("--until", required=True, metavar="YYYY-MM-DD", help="last day the waiver applies")
    _cluster_flags(wv)
    wv.set_defaults(func=_waive)
    return top


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = parser().parse_args(argv)
    run: Callable[[argparse.Namespace, TextIO], int] = args.func
    try:
        return run(args, out or sys.stdout)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except errors.PayScopeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
