"""Build etcd, kube-apiserver and helm from Go modules, cached by version.

``go install k8s.io/kubernetes/cmd/kube-apiserver@vX`` cannot work: the
kubernetes go.mod requires every ``k8s.io/<staging>`` module at v0.0.0 and
replaces it with a local ``./staging`` folder. So a wrapper module requires
``k8s.io/kubernetes`` at the pinned release and replaces each staging module
with its published ``v0.<minor>.<patch>`` twin, read from that release's own
go.mod, and copies its ``godebug`` line. etcd's server module has local
replaces too, so it gets a wrapper of its own. Binaries are linked statically
(CGO_ENABLED=0) and carry truthful version strings.

This module only builds; starting the servers is ``kube.py``'s job.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

from tests.testenv import cache

KUBERNETES_VERSION = "v1.37.2"
ETCD_VERSION = "v3.6.16"
HELM_VERSION = "v3.22.0"

_GO_ENV = {"CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}


def _k8s_twin(version: str) -> str:
    """``v1.37.2`` -> ``v0.37.2``: the staging modules' version for a release."""
    major_minor_patch = version.lstrip("v").split(".")
    return "v0." + ".".join(major_minor_patch[1:])


def _write_wrapper(folder: Path, module: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "go.mod").write_text(f"module {module}\n\ngo 1.26.0\n")


def _replace_lines(release_gomod: str) -> list[str]:
    """The staging modules a kubernetes release replaces with local folders."""
    return sorted(set(re.findall(r"^\s*(k8s\.io/[\w.\-/]+)\s+=>\s+\./staging/", release_gomod, re.M)))


def go_build(
    component: str,
    version: str,
    *,
    prepare: Callable[[Path, Path], None],
    package: str,
    binary: str,
    ldflags: str,
) -> Path:
    """Build ``package`` in a wrapper module into ``<cache>/<component>-<version>/bin/<binary>``, once."""
    out = cache.artifact_dir(component, version)
    if cache.is_complete(out):
        return out
    cache.reset(out)
    log = out / "build.log"
    src = out / "src"
    _write_wrapper(src, f"payscope.local/testenv/{component}")
    prepare(src, log)
    cache.run(
        ["go", "build", "-trimpath", f"-ldflags=-s -w {ldflags}", "-o", str(out / "bin" / binary), package],
        cwd=src,
        env=_GO_ENV,
        log=log,
    )
    cache.mark_complete(out)
    return out


def _minor(version: str) -> str:
    return version.lstrip("v").split(".")[1]


def _prepare_kubernetes(src: Path, log: Path) -> None:
    """Require the release, replacing each staging module by its published twin; copy its godebug line."""
    download = ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"]
    release_gomod = Path(json.loads(cache.run(download, cwd=src, log=log))["GoMod"]).read_text()
    twin = _k8s_twin(KUBERNETES_VERSION)
    edits = [f"-replace={mod}={mod}@{twin}" for mod in _replace_lines(release_gomod)]
    godebug = re.search(r"^godebug\s+(.+)$", release_gomod, re.M)
    if godebug:
        edits.append(f"-godebug={godebug.group(1).strip()}")
    cache.run(["go", "mod", "edit", *edits], cwd=src, log=log)
    get = ["go", "get", f"k8s.io/kubernetes/cmd/kube-apiserver@{KUBERNETES_VERSION}"]
    cache.run(get, cwd=src, env=_GO_ENV, log=log)


def _requirer(module: str) -> Callable[[Path, Path], None]:
    def prepare(src: Path, log: Path) -> None:
        cache.run(["go", "get", module], cwd=src, env=_GO_ENV, log=log)

    return prepare


def build_kubernetes() -> Path:
    """Return the folder holding ``bin/kube-apiserver``, building it if needed."""
    ldflags = " ".join(
        f"-X {pkg}.{key}={value}"
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for key, value in (
            ("gitVersion", KUBERNETES_VERSION),
            ("gitMajor", "1"),
            ("gitMinor", _minor(KUBERNETES_VERSION)),
        )
    )
    return go_build(
        "kubernetes",
        KUBERNETES_VERSION,
        prepare=_prepare_kubernetes,
        package="k8s.io/kubernetes/cmd/kube-apiserver",
        binary="kube-apiserver",
        ldflags=ldflags,
    )


def build_etcd() -> Path:
    """Return the folder holding ``bin/etcd``, building it if needed."""
    return go_build(
        "etcd",
        ETCD_VERSION,
        prepare=_requirer(f"go.etcd.io/etcd/server/v3@{ETCD_VERSION}"),
        package="go.etcd.io/etcd/server/v3",
        binary="etcd",
        ldflags="-X go.etcd.io/etcd/api/v3/version.GitSHA=payscope-testenv",
    )


def build_helm() -> Path:
    """Return the folder holding ``bin/helm``, built with its version ldflags (else it assumes Kubernetes 1.20)."""
    minor = _minor(KUBERNETES_VERSION)
    ldflags = " ".join(
        [
            f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}",
            "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
            "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1",
            f"-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor={minor}",
            "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1",
            f"-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor={minor}",
        ]
    )
    return go_build(
        "helm",
        HELM_VERSION,
        prepare=_requirer(f"helm.sh/helm/v3@{HELM_VERSION}"),
        package="helm.sh/helm/v3/cmd/helm",
        binary="helm",
        ldflags=ldflags,
    )


def build_all() -> dict[str, Path]:
    """Build every Go component; sequential, since each build wants both cores."""
    os.environ.setdefault("GOTOOLCHAIN", "local")
    return {"etcd": build_etcd(), "kubernetes": build_kubernetes(), "helm": build_helm()}


if __name__ == "__main__":
    for name, folder in build_all().items():
        print(name, folder)
