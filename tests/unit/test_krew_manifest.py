"""The krew manifest of ``kubectl payscope``: well-formed, naming the archive a build produces, with its sha256.

krew refuses an install whose archive does not match ``sha256``; the archive is
reproducible (``tests.krew``), so a changed launcher or version without an
updated manifest fails here rather than on a user's machine. The launcher is run
for real: with its virtualenv already in place it hands over to the plugin.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

from payscope_operator import __version__
from tests import krew


def _manifest() -> dict[str, object]:
    loaded: dict[str, object] = yaml.safe_load(krew.MANIFEST.read_text())
    return loaded


def test_the_manifest_has_krews_shape_and_is_named_after_its_file() -> None:
    manifest = _manifest()
    assert manifest["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert manifest["kind"] == "Plugin"
    assert manifest["metadata"] == {"name": krew.MANIFEST.stem}
    spec = manifest["spec"]
    assert isinstance(spec, dict)
    assert spec["version"] == f"v{__version__}"
    assert spec["shortDescription"]
    assert len(spec["shortDescription"]) <= 80


def test_every_platform_names_the_archive_its_sha256_and_the_launcher() -> None:
    spec = _manifest()["spec"]
    assert isinstance(spec, dict)
    for platform in spec["platforms"]:
        assert platform["selector"]["matchExpressions"][0]["key"] == "os"
        assert platform["uri"].endswith(f"/v{__version__}/{krew.archive_name()}")
        assert platform["sha256"] == krew.sha256(), "rebuild with `make krew` and update sha256"
        assert platform["bin"] == "kubectl-payscope"
        assert {"from": "kubectl-payscope", "to": "."} in platform["files"]


def test_the_archive_is_reproducible_and_holds_the_executable_launcher() -> None:
    assert krew.archive_bytes() == krew.archive_bytes()
    with tarfile.open(fileobj=io.BytesIO(krew.archive_bytes()), mode="r:gz") as tar:
        (member,) = tar.getmembers()
        assert member.name == "kubectl-payscope"
        assert member.mode & 0o111
    assert f"version={__version__}\n" in krew.LAUNCHER.read_text()


def test_the_launcher_hands_over_to_the_plugin_in_its_virtualenv(tmp_path: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(krew.archive_bytes()), mode="r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    venv = tmp_path / f"venv-{__version__}"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "kubectl-payscope").symlink_to(Path(sys.executable).parent / "kubectl-payscope")
    (venv / ".installed").touch()
    bin_dir = tmp_path / "krew-bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl-payscope").symlink_to(tmp_path / "kubectl-payscope")  # as krew links it
    done = subprocess.run(
        [str(bin_dir / "kubectl-payscope"), "--version"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"kubectl-payscope {__version__}"
