"""Charts in a real jail: matplotlib with the Agg backend, its font cache built once by
setup and bound read-only into each jail's MPLCONFIGDIR (nsjail.cfg), and a saved PNG
returned through ``output_files`` (docs/sandbox.md, docs/performance.md).

The PNG is checked by decoding it here (chunk CRCs, inflated rows, pixels), not by
trusting its name or MIME type. The font-cache tests fail when the cache is missing
or stale: matplotlib then rebuilds it in /tmp, writes a regular file there, and logs
that it did (the fresh-jail test turns on matplotlib's INFO log to see it).
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from pyexec.api import Service
from tests.support import Api, call, check_schema, wait_healthy

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FONT_CACHE_DIR = Path("/opt/pyexec/sandbox/share/matplotlib")
LINE_COLOUR = (0x1F, 0x77, 0xB4)  # matplotlib's first colour, "C0"
CHANNELS = {2: 3, 6: 4}  # PNG colour type -> samples per pixel (RGB, RGBA)

CHART = """\
import matplotlib.pyplot as plt


def main():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2, 3], [0, 1, 4, 9], linewidth=6)
    ax.set_title("Squares")
    fig.savefig("chart.png", dpi=100)
    return "saved"
"""

# What matplotlib sees of its configuration directory, before and after a chart.
FONT_CACHE_PROBE = """\
import errno
import hashlib
import os

import matplotlib
import matplotlib.pyplot as plt
from matplotlib import font_manager


def main():
    version = font_manager.FontManager.__version__
    cache = os.path.join(matplotlib.get_cachedir(), f"fontlist-v{version}.json")
    before = sorted(os.listdir("/tmp"))
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    ax.set_title("fonts")
    fig.savefig("chart.png")
    with open(cache, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    facts = {
        "configdir": matplotlib.get_configdir(),
        "cachedir": matplotlib.get_cachedir(),
        "backend": matplotlib.get_backend().lower(),
        "cache": os.path.basename(cache),
        "bound": os.stat(cache).st_dev != os.stat("/tmp").st_dev,
        "read_only": bool(os.statvfs(cache).f_flag & os.ST_RDONLY),
        "sha256": digest,
    }
    attempts = {}
    for name, action in (
        ("append", lambda: open(cache, "a").close()),
        ("remove", lambda: os.remove(cache)),
        ("rename", lambda: os.rename(cache, "/tmp/elsewhere.json")),
    ):
        try:
            action()
            attempts[name] = "DONE"
        except OSError as exc:
            attempts[name] = errno.errorcode.get(exc.errno, type(exc).__name__)
    return {
        **facts,
        "attempts": attempts,
        "tmp_before": before,
        "tmp_after": sorted(os.listdir("/tmp")),
        "fonts_missing": [
            font.fname
            for font in font_manager.fontManager.ttflist
            if not os.path.isfile(font.fname)
        ],
    }
"""


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (type, body) chunks of a PNG, each CRC checked, IHDR first and IEND last."""
    assert data[:8] == PNG_SIGNATURE
    chunks: list[tuple[bytes, bytes]] = []
    position = 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        position += 12 + length
    assert position == len(data)
    assert chunks[0][0] == b"IHDR"
    assert chunks[-1] == (b"IEND", b"")
    return chunks


def unfilter(method: int, line: bytearray, previous: bytes, step: int) -> None:
    """Undo one PNG row filter in place (RFC 2083, 6: None, Sub, Up, Average, Paeth)."""
    assert method in range(5), f"unknown PNG filter {method}"
    for i in range(len(line) if method else 0):
        left = line[i - step] if i >= step else 0
        up = previous[i]
        corner = previous[i - step] if i >= step else 0
        guess = left + up - corner
        # Paeth: the nearest of left, up and corner to the guess, ties in that order.
        paeth = min((abs(guess - left), 0, left), (abs(guess - up), 1, up))
        paeth = min(paeth, (abs(guess - corner), 2, corner))
        line[i] = (line[i] + (0, left, up, (left + up) // 2, paeth[2])[method]) & 0xFF


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the RGB of every pixel of an 8-bit, non-interlaced RGB(A) PNG,
    decoded from its chunks; fails on anything broken."""
    chunks = png_chunks(data)
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, interlace) == (8, 0)
    assert colour in CHANNELS
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    step = CHANNELS[colour]
    stride = width * step
    assert len(raw) == height * (1 + stride)
    pixels: list[bytes] = []
    previous = bytes(stride)
    for start in range(0, len(raw), stride + 1):
        line = bytearray(raw[start + 1 : start + 1 + stride])
        unfilter(raw[start], line, previous, step)
        pixels += [bytes(line[i : i + 3]) for i in range(0, stride, step)]
        previous = bytes(line)
    return width, height, pixels


def host_font_cache() -> Path:
    """The one font cache setup built into the sandbox."""
    (cache,) = FONT_CACHE_DIR.glob("fontlist-v*.json")
    return cache


@pytest.mark.usefixtures("leaves_nothing_behind")
def test_a_chart_saved_as_png_comes_back_as_a_png_that_decodes(api: Api) -> None:
    status, body = api.post({"script": CHART, "output_files": ["*.png"]})
    assert status == 200, body
    assert (body["result"], body["stdout"], body["stderr"]) == ("saved", "", "")
    assert body["files_collected"] is True
    (png,) = body["files"]
    assert (png["path"], png["mime_type"], png["encoding"]) == ("chart.png", "image/png", "base64")
    data = base64.b64decode(png["content"], validate=True)
    assert png["size"] == len(data) > 2000
    width, height, pixels = png_pixels(data)
    assert (width, height) == (300, 200)  # figsize (3, 2) at 100 dpi
    white = pixels.count(b"\xff\xff\xff")
    line = pixels.count(bytes(LINE_COLOUR))
    assert white > len(pixels) // 2  # the figure's background
    assert line > 300  # the plotted line, 6 points wide


@pytest.mark.usefixtures("leaves_nothing_behind")
def test_the_jail_reads_the_font_cache_setup_built_and_never_writes_it(api: Api) -> None:
    cache = host_font_cache()
    status, body = api.post({"script": FONT_CACHE_PROBE})
    assert status == 200, body
    assert body["stderr"] == ""
    result = body["result"]
    assert (result["configdir"], result["cachedir"], result["backend"]) == ("/tmp", "/tmp", "agg")
    assert result["cache"] == cache.name
    # A bind mount of the file setup built, read-only: not a copy matplotlib rebuilt.
    assert result["bound"] is True
    assert result["read_only"] is True
    # The jail's uid may not write it (EACCES) before the mount's read-only flag is
    # met; a mount point cannot be removed or renamed.
    assert result["attempts"] == {"append": "EACCES", "remove": "EBUSY", "rename": "EBUSY"}
    assert result["sha256"] == hashlib.sha256(cache.read_bytes()).hexdigest()
    # Nothing else in MPLCONFIGDIR (no rebuilt cache, no lock file), before or after.
    assert result["tmp_before"] == result["tmp_after"] == [cache.name]
    assert result["fonts_missing"] == []


def test_matplotlib_imported_in_a_fresh_jail_logs_nothing_and_builds_no_cache(
    make_service: Callable[..., Service],
) -> None:
    # Nothing pre-imported: matplotlib loads its font cache after the hand-over, so
    # whatever it logs or prints lands in the answer's stderr (a warm jail's
    # start-up output is dropped). INFO would show "generated new fontManager".
    service = make_service(PYEXEC_POOL_SIZE="0", PYEXEC_PREIMPORT="")
    wait_healthy(service)
    script = "import logging\nlogging.basicConfig(level=logging.INFO)\n" + FONT_CACHE_PROBE
    answer = call(service, {"script": script})
    assert answer.status == 200, answer.body
    check_schema(200, answer.body)
    assert answer.body["stderr"] == ""
    assert answer.body["result"]["bound"] is True
    assert answer.body["result"]["tmp_after"] == [host_font_cache().name]


@pytest.mark.usefixtures("leaves_nothing_behind")
def test_a_script_that_names_matplotlib_gets_a_jail_that_imported_pyplot(api: Api) -> None:
    status, body = api.run(
        "import sys\n\nPRELOADED = 'matplotlib.pyplot' in sys.modules\n"
        "import matplotlib.pyplot\n\n\ndef main():\n    return PRELOADED\n"
    )
    assert (status, body["result"]) == (200, True)
    # A script that does not name it (the name is split here on purpose) gets a light
    # jail, which has not paid for matplotlib.
    status, body = api.run(
        "import sys\n\n\ndef main():\n    return 'matplot' 'lib' in sys.modules\n"
    )
    assert (status, body["result"]) == (200, False)
