"""Headless Chromium (Debian's ``chromium``) for tests that must see a page as a person would.

``render`` loads a local file and writes a screenshot and the DOM Chromium built;
``png_facts`` reads a PNG with the standard library (no imaging package is a
dependency): its size and how many distinct colours a sample of its rows holds,
enough to tell a rendered page from a blank or uniform one. Chromium runs with
the flags this machine needs (no sandbox as root, no GPU, no background
networking: the network is closed and Chromium's own connections would be
refused), a fresh profile, and a timeout.

What it must not do: fetch anything from the network (pages are local files).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
MISSING = "chromium is not installed (Debian package chromium; .ci/system-packages installs it when run as root)"


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass(frozen=True)
class Rendered:
    screenshot: Path
    dom: str


def render(page: Path, out: Path, *, width: int = 1000, height: int = 750, timeout: float = 90) -> Rendered:
    """Screenshot ``page`` to ``out`` and return it with the DOM Chromium built (``--dump-dom``)."""
    binary = chromium()
    if binary is None:
        raise FileNotFoundError(MISSING)
    url = page.resolve().as_uri()
    common = [binary, *FLAGS, f"--window-size={width},{height}"]
    subprocess.run(
        [*common, f"--user-data-dir={out.parent / 'chromium-shot'}", f"--screenshot={out}", url],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    dom = subprocess.run(
        [*common, f"--user-data-dir={out.parent / 'chromium-dom'}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    ).stdout
    return Rendered(out, dom)


@dataclass(frozen=True)
class PngFacts:
    width: int
    height: int
    colours: int  # distinct pixel values in the sampled rows


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(kind: int, row: bytearray, prior: bytes, bpp: int) -> bytearray:
    if kind == 1:
        for i in range(bpp, len(row)):
            row[i] = (row[i] + row[i - bpp]) & 0xFF
    elif kind == 2:
        for i in range(len(row)):
            row[i] = (row[i] + prior[i]) & 0xFF
    elif kind == 3:
        for i in range(len(row)):
            left = row[i - bpp] if i >= bpp else 0
            row[i] = (row[i] + ((left + prior[i]) >> 1)) & 0xFF
    elif kind == 4:
        for i in range(len(row)):
            left = row[i - bpp] if i >= bpp else 0
            up_left = prior[i - bpp] if i >= bpp else 0
            row[i] = (row[i] + _paeth(left, prior[i], up_left)) & 0xFF
    return row


def png_facts(path: Path, *, every: int = 8) -> PngFacts:
    """Size and colour count of an 8-bit RGB/RGBA PNG (every ``every``-th row sampled)."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    pos, idat = 8, bytearray()
    width = height = depth = colour_type = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour_type = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    if depth != 8 or colour_type not in (2, 6):
        raise ValueError(f"unsupported PNG: bit depth {depth}, colour type {colour_type}")
    bpp = 3 if colour_type == 2 else 4
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    prior = bytes(stride)
    seen: set[bytes] = set()
    for y in range(height):
        start = y * (stride + 1)
        row = _unfilter(raw[start], bytearray(raw[start + 1 : start + 1 + stride]), prior, bpp)
        if y % every == 0:
            seen.update(bytes(row[i : i + bpp]) for i in range(0, stride, bpp))
        prior = bytes(row)
    return PngFacts(width, height, len(seen))
