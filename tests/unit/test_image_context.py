"""The image's build context holds what the Dockerfile copies: every COPY source is
let in by .dockerignore (an allow-list), and every C file scripts/build_nsjail.sh
links into nsjail is copied, let in, and in setup's rebuild stamp. A file added to
one list and not the others failed only in the container build (issue 20's
scripts/nsjail_ids.c)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]


def _dockerfile_copies() -> list[str]:
    """The sources of the Dockerfile's COPY instructions from the build context."""
    text = (PROJECT / "Dockerfile").read_text().replace("\\\n", " ")
    sources: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0] != "COPY" or any(w.startswith("--from") for w in words):
            continue
        sources += [word for word in words[1:-1] if not word.startswith("--")]
    return sources


def _allowed(path: str) -> bool:
    """Whether .dockerignore (``*`` then ``!`` entries) lets ``path`` in."""
    entries = [
        line[1:]
        for line in (PROJECT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    return any(
        path == entry or (entry.endswith("/") and path.startswith(entry)) for entry in entries
    )


def _linked_by_build() -> list[str]:
    """The files of ours that scripts/build_nsjail.sh links into nsjail."""
    script = (PROJECT / "scripts/build_nsjail.sh").read_text()
    match = re.search(r'^ours="([^"]+)"$', script, flags=re.MULTILINE)
    assert match is not None
    return match.group(1).split()


@pytest.mark.parametrize("source", _dockerfile_copies())
def test_every_copied_file_is_in_the_build_context(source: str) -> None:
    assert (PROJECT / source).exists(), source
    assert _allowed(source), f"{source} is copied but .dockerignore leaves it out"


@pytest.mark.parametrize("source", _linked_by_build())
def test_every_file_linked_into_nsjail_reaches_the_image_and_setup(source: str) -> None:
    assert source in _dockerfile_copies()
    assert _allowed(source)
    assert source in (PROJECT / "scripts/setup.sh").read_text()  # its rebuild stamp
