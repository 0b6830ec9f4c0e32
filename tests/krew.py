"""The krew archive of ``kubectl payscope``: built reproducibly, so the manifest's sha256 can be checked.

The archive holds only the launcher ``plugins/krew/kubectl-payscope`` (it installs
the released ``payscope-operator`` wheel into a private virtualenv on first use),
so its bytes change only with the launcher and the version, and the sha256 in
``plugins/krew/payscope.yaml`` is that of the archive built here: tar entries with
fixed owner, mode and time, gzip without a timestamp. ``make krew`` writes it to
``dist/`` for a release (then ``kubectl krew install --manifest=plugins/krew/payscope.yaml
--archive=dist/kubectl-payscope-v<version>.tar.gz`` installs it locally).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import sys
import tarfile
from pathlib import Path

from payscope_operator import __version__

REPO = Path(__file__).resolve().parents[1]
KREW = REPO / "plugins" / "krew"
LAUNCHER = KREW / "kubectl-payscope"
MANIFEST = KREW / "payscope.yaml"


def archive_name(version: str = __version__) -> str:
    return f"kubectl-payscope-v{version}.tar.gz"


def archive_bytes() -> bytes:
    """The .tar.gz krew downloads, identical on every build of the same launcher."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = LAUNCHER.read_bytes()
        info = tarfile.TarInfo("kubectl-payscope")
        info.size, info.mode, info.mtime = len(data), 0o755, 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", fileobj=packed, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def sha256() -> str:
    return hashlib.sha256(archive_bytes()).hexdigest()


def main(argv: list[str]) -> int:
    dest = Path(argv[0] if argv else "dist")
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / archive_name()
    path.write_bytes(archive_bytes())
    print(f"{path}  sha256 {sha256()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
