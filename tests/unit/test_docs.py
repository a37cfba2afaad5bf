"""The documents agree with the code: kinds, settings and links.

- docs/api.md's kinds table has one row per kind of schemas/error.schema.json,
  with the same status;
- docs/configuration.md's settings table has one row per environment variable the
  service reads, with the defaults and bounds of pyexec/settings.py;
- every relative link in README.md and docs/*.md points to a file that exists, and
  to a heading that exists when it names one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pyexec.settings import _FIELDS, _PATHS, Settings

ROOT = Path(__file__).resolve().parent.parent.parent
API_DOC = ROOT / "docs" / "api.md"
CONFIGURATION_DOC = ROOT / "docs" / "configuration.md"
ERROR_SCHEMA = ROOT / "schemas" / "error.schema.json"
# Variables read outside _FIELDS and _PATHS: by load_settings, scripts/serve or
# gunicorn.conf.py.
OTHER_VARIABLES = {
    "PYEXEC_API_KEYS",
    "PYEXEC_PREIMPORT",
    "PYEXEC_PAGE",
    "GOOGLE_CLOUD_PROJECT",
    "PORT",
    "HOST",
}

KIND_ROW = re.compile(r"`([a-z_]+)`")
STATUS = re.compile(r"[1-5][0-9][0-9]")
VARIABLE = re.compile(r"`([A-Z][A-Z0-9_]*)`")
NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
BOUNDS = re.compile(r"(-?[0-9]+(?:\.[0-9]+)?) to (-?[0-9]+(?:\.[0-9]+)?)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#+ (.+)$", re.MULTILINE)


def _table(path: Path, heading: str) -> list[list[str]]:
    """The body rows (cells stripped) of the first table after ``heading``.

    The table ends at its first non-table line; its header and separator rows are
    dropped.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    assert heading in lines, f"{path.name} has no heading {heading!r}"
    start = lines.index(heading) + 1
    while start < len(lines) and not lines[start].startswith("|"):
        assert not lines[start].startswith("#"), f"no table under {heading!r}"
        start += 1
    rows: list[list[str]] = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    assert len(rows) > 2, f"the table under {heading!r} is empty"
    return rows[2:]


def _schema_kinds() -> set[tuple[str, int]]:
    schema = json.loads(ERROR_SCHEMA.read_text(encoding="utf-8"))
    variants = schema["properties"]["kind"]["oneOf"]
    kinds = {(variant["const"], variant["x-status"]) for variant in variants}
    assert len(kinds) == len(variants), "a kind is listed twice in the schema"
    return kinds


def _documented_kinds() -> list[tuple[str, int]]:
    kinds: list[tuple[str, int]] = []
    for row in _table(API_DOC, "## Kinds"):
        assert len(row) == 4, f"kind rows are | `kind` | status | meaning | extra fields |: {row}"
        name = KIND_ROW.fullmatch(row[0])
        assert name, f"the first cell names one kind in backquotes: {row[0]!r}"
        assert STATUS.fullmatch(row[1]), f"the second cell is a status: {row[1]!r}"
        assert row[2], f"{row[0]} has no meaning"
        kinds.append((name.group(1), int(row[1])))
    return kinds


def _documented_settings() -> dict[str, list[str]]:
    """Variable name -> its row's cells (default, bounds, meaning)."""
    settings: dict[str, list[str]] = {}
    for row in _table(CONFIGURATION_DOC, "## Settings"):
        assert len(row) == 4, f"setting rows are | `VAR` | default | bounds | meaning |: {row}"
        name = VARIABLE.fullmatch(row[0])
        assert name, f"the first cell names one variable in backquotes: {row[0]!r}"
        assert name.group(1) not in settings, f"{name.group(1)} has two rows"
        assert row[3], f"{name.group(1)} has no meaning"
        settings[name.group(1)] = row[1:]
    return settings


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _relative_links(document: Path) -> list[str]:
    """The link targets of ``document`` that are neither URLs nor in-page anchors,
    outside fenced code blocks."""
    text = FENCE.sub("", document.read_text(encoding="utf-8"))
    return [
        target
        for target in LINK.findall(text)
        if not re.match(r"[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")
    ]


def _anchors(document: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    text = FENCE.sub("", document.read_text(encoding="utf-8"))
    return {
        re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")
        for heading in HEADING.findall(text)
    }


def test_every_kind_in_the_error_schema_has_one_row_in_the_api_doc() -> None:
    documented = _documented_kinds()
    assert len(documented) == len(set(documented)), "a kind has two rows"
    assert set(documented) == _schema_kinds()


def test_the_kinds_table_names_each_kind_once() -> None:
    names = [name for name, _status in _documented_kinds()]
    assert len(names) == len(set(names))


def test_every_environment_variable_has_one_row_in_the_configuration_doc() -> None:
    expected = set(_FIELDS) | set(_PATHS) | OTHER_VARIABLES
    assert set(_documented_settings()) == expected


def test_every_numeric_setting_documents_the_dataclass_default() -> None:
    documented = _documented_settings()
    for variable, (attribute, _parser, _low, _high) in _FIELDS.items():
        default = Settings.__dataclass_fields__[attribute].default
        assert isinstance(default, int | float), attribute
        cell = documented[variable][0]
        assert NUMBER.fullmatch(cell), f"{variable}: write the default as a plain number"
        assert float(cell) == float(default), f"{variable}: {cell} != {default}"


def test_every_numeric_setting_documents_the_bounds_it_is_checked_against() -> None:
    documented = _documented_settings()
    for variable, (_attribute, _parser, low, high) in _FIELDS.items():
        cell = documented[variable][1]
        bounds = BOUNDS.fullmatch(cell)
        assert bounds, f"{variable}: write the bounds as 'MIN to MAX', got {cell!r}"
        assert (float(bounds.group(1)), float(bounds.group(2))) == (float(low), float(high)), (
            f"{variable}: {cell} != {low:g} to {high:g}"
        )


def test_the_page_switch_documents_its_default_and_its_two_values() -> None:
    default, values, _meaning = _documented_settings()["PYEXEC_PAGE"]
    assert Settings.page is True
    assert (default, values) == ("`on`", "`on` or `off`")


def test_path_settings_have_no_numeric_bounds() -> None:
    documented = _documented_settings()
    for variable in _PATHS:
        assert not BOUNDS.fullmatch(documented[variable][1]), variable


def test_every_relative_link_in_the_docs_points_to_an_existing_file() -> None:
    checked = 0
    for document in _documents():
        for target in _relative_links(document):
            resolved = (document.parent / target.split("#", 1)[0]).resolve()
            assert resolved.exists(), f"{document.relative_to(ROOT)}: {target} does not exist"
            checked += 1
    assert checked, "no relative links found: the link pattern is wrong"


def test_every_link_to_a_section_of_a_doc_names_a_heading_it_has() -> None:
    for document in _documents():
        for target in _relative_links(document):
            path, _, anchor = target.partition("#")
            if anchor and path.endswith(".md"):
                linked = (document.parent / path).resolve()
                assert anchor in _anchors(linked), f"{document.relative_to(ROOT)}: {target}"
