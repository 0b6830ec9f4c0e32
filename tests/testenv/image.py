"""Build the operator's image from the repository's Dockerfile with podman, offline, cached.

``python -m tests.testenv.image`` (``make image``) prints the tag it built. The
real build pulls ``python:3.11-slim-bookworm`` and installs from the package
index; neither is reachable here, so three things stand in, each cached outside
the clone (``<testenv cache>/images``) so that a second run is warm:

- the base: Debian bookworm's own python3.11, bootstrapped by ``mmdebstrap``
  from the machine's apt sources into a tarball and imported as
  ``BASE_TAG``, the name passed as the Dockerfile's ``PYTHON_IMAGE``; like the
  official slim image it has no docs, manuals nor locales, sets ``LANG=C.UTF-8``
  and lets pip install into the system interpreter;
- a wheelhouse: the package's dependencies and build requirements as binary
  wheels, downloaded once by the base image's own pip and mounted into the
  build, which runs with ``--no-index`` and no network at all (the
  Dockerfile's ``PIP_OPTIONS``);
- podman's own layer cache (its storage lives outside the clone too).

It only builds; running the image is the e2e test's job (``podman_args`` gives
both the flags this machine needs: runc, which handles hybrid cgroups where
crun refuses them, and ulimits within the caller's own, since podman's defaults
are higher than an unprivileged container manager may set).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

from tests.testenv import cache, errors

REPO = Path(__file__).resolve().parents[2]
SUITE = "bookworm"
PYTHON = "3.11"  # bookworm's python3 is 3.11, as in python:3.11-slim-bookworm
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "python-is-python3", "ca-certificates")
BASE_TAG = f"localhost/payscope-testenv/python:{PYTHON}-{SUITE}"
IMAGE_REPOSITORY = "localhost/payscope-operator"
CEILING = 16384  # open files and processes: plenty for the operator, and within what this machine allows
SLIM = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")
SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))


def folder() -> Path:
    path = cache.root() / "images"
    path.mkdir(parents=True, exist_ok=True)
    return path


def podman() -> str:
    found = shutil.which("podman")
    if not found:
        raise errors.BuildError("podman missing: apt-get install podman runc mmdebstrap")
    return found


def podman_args() -> list[str]:
    """Runtime and ulimit flags for ``podman build`` and ``podman run`` on this machine."""
    args = ["--runtime", "runc"] if shutil.which("runc") else []
    for name, limit in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        hard = resource.getrlimit(limit)[1]
        value = str(CEILING if hard == resource.RLIM_INFINITY else min(hard, CEILING))
        args += ["--ulimit", f"{name}={value}:{value}"]
    return args


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _image_exists(tag: str) -> bool:
    return subprocess.run([podman(), "image", "exists", tag], check=False).returncode == 0


def _sources() -> str | None:
    """The machine's apt sources, so the bootstrap uses the mirror apt-get uses (None: mmdebstrap's default)."""
    for path in SOURCES:
        if path.exists() and path.read_text().strip():
            return str(path)
    return None


def base() -> str:
    """Import the bootstrapped base under ``BASE_TAG`` (bootstrapping it once); return the tag."""
    key = _key(SUITE, BASE_PACKAGES, SLIM, 2)
    tarball = folder() / f"python-{PYTHON}-{SUITE}-{key}.tar"
    marker = folder() / f"python-{PYTHON}-{SUITE}-{key}.imported"
    if _image_exists(BASE_TAG) and marker.exists():
        return BASE_TAG
    if not tarball.exists():
        if not shutil.which("mmdebstrap"):
            raise errors.BuildError("mmdebstrap missing: apt-get install mmdebstrap")
        partial = tarball.with_suffix(".partial")
        argv = [
            "mmdebstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            *(f"--dpkgopt=path-exclude={pattern}" for pattern in SLIM),
            # As in python:3.11-slim, pip may install into the image's interpreter.
            '--customize-hook=rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
            "--format=tar",
            SUITE,
            str(partial),
        ]
        sources = _sources()
        if sources:
            argv.append(sources)
        cache.run(argv, log=folder() / "mmdebstrap.log")
        partial.rename(tarball)
    changes = ["ENV LANG=C.UTF-8", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    cache.run(
        [podman(), "import", *(f"--change={c}" for c in changes), '--change=CMD ["python3"]', str(tarball), BASE_TAG]
    )
    marker.write_text(BASE_TAG + "\n")
    return BASE_TAG


def _requirements() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    return [*project["build-system"]["requires"], *project["project"]["dependencies"]]


def wheelhouse(base_tag: str) -> Path:
    """The dependencies and build requirements as binary wheels, downloaded once by the base's own pip.

    pip evaluates environment markers against the interpreter it runs on (``--python-version``
    does not change that), so the download runs inside the base image: bookworm's 3.11.2 needs
    ``async-timeout`` for redis where a newer 3.11 does not. It uses the host's network and CA
    bundle, and the host's index settings when there are any.
    """
    requirements = _requirements()
    out = folder() / f"wheelhouse-{_key(requirements, base_tag, PYTHON, 2)}"
    if cache.is_complete(out):
        return out
    cache.reset(out)
    forwarded = [
        f"--env={k}" for k in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_DEFAULT_TIMEOUT") if os.environ.get(k)
    ]
    bundle = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    cache.run(
        [
            podman(),
            "run",
            "--rm",
            *podman_args(),
            "--network=host",
            f"--volume={out}:/wheelhouse",
            f"--volume={bundle}:/etc/ssl/certs/host-ca-certificates.crt:ro",
            "--env=PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt",
            "--env=PIP_DISABLE_PIP_VERSION_CHECK=1",
            *forwarded,
            base_tag,
            "python",
            "-m",
            "pip",
            "download",
            "--only-binary=:all:",
            "--dest=/wheelhouse",
            *requirements,
        ],
        log=folder() / "wheelhouse.log",
    )
    cache.mark_complete(out)
    return out


def version() -> str:
    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One build at a time on this machine (worktrees and CI share the cache and podman's storage)."""
    with open(folder() / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build() -> str:
    """Build the repository's Dockerfile offline; tag it ``IMAGE_REPOSITORY:<version>``, return its image id.

    Callers run the id, not the tag: another checkout may retag the version meanwhile.
    """
    tag = f"{IMAGE_REPOSITORY}:{version()}"
    with _locked():
        base_tag = base()
        wheels = wheelhouse(base_tag)
        with tempfile.TemporaryDirectory() as scratch:
            iidfile = Path(scratch) / "iid"
            argv = [
                podman(),
                "build",
                *podman_args(),
                "--pull=never",
                "--network=none",
                "--layers",
                f"--iidfile={iidfile}",
                f"--volume={wheels}:/wheelhouse:ro",
                f"--build-arg=PYTHON_IMAGE={base_tag}",
                "--build-arg=PIP_OPTIONS=--no-index --find-links=/wheelhouse",
                f"--build-arg=VERSION={version()}",
                "--tag",
                tag,
                "--file",
                str(REPO / "Dockerfile"),
                str(REPO),
            ]
            cache.run(argv, log=folder() / "build.log")
            image_id = iidfile.read_text().strip().removeprefix("sha256:")
        # Every code change leaves the previous build's layers untagged; keep a day of them (the
        # layer cache of recent builds), so that repeated CI runs on one machine do not fill its disk.
        cache.run([podman(), "image", "prune", "--force", "--filter=until=24h"], log=folder() / "build.log")
        return image_id


def main() -> int:
    started = time.monotonic()
    try:
        image_id = build()
    except errors.TestEnvError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"built {IMAGE_REPOSITORY}:{version()} ({image_id[:12]}) in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
