"""pyexec.files: the rules for a file's path, the request's ``files`` decoded, the
``output_files`` patterns, MIME types, and the returned files' listing re-checked as
if forged before it becomes the answer's ``files``."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from pyexec.errors import RequestError
from pyexec.files import (
    DEFAULT_MIME_TYPE,
    MAX_LISTED,
    MIME_TYPES,
    OMITTED,
    FileCaps,
    answer_entries,
    decode_files,
    mime_type,
    path_problem,
    pattern_problem,
)

EMPTY_COMPONENT = "must not have an empty, '.' or '..' component"
NUL_OR_BACKSLASH = "must not contain a NUL byte or a backslash"
NOT_RELATIVE = "must be relative to the working directory, without a leading or trailing /"
LENGTH = "must be 1 to 1024 bytes long"
COMPONENT = "has a component over 255 bytes"
DEPTH = "has more than 16 levels"
NOT_UTF8 = "is not valid UTF-8"
NOT_PADDED = "is not padded base64 (its length is not a multiple of 4)."
NOT_STANDARD = "is not standard base64 (RFC 4648: A-Z a-z 0-9 + /, padded with =)."
# A path of exactly 1024 bytes in five components, none over 255 bytes.
PATH_1024 = "/".join(["a" * 255, "b" * 255, "c" * 255, "d" * 254, "e"])


# --- path_problem ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("a", id="one character"),
        pytest.param("data/in/table.csv", id="nested"),
        pytest.param("x" * 255, id="a component of 255 bytes"),
        pytest.param("\u00e9" * 127, id="a component of 254 bytes in 127 characters"),
        pytest.param(PATH_1024, id="1024 bytes"),
        pytest.param("/".join(["d"] * 16), id="16 levels"),
        pytest.param(".env", id="a dotfile"),
        pytest.param("...", id="three dots"),
        pytest.param("a..b/..c/d..", id="dots inside names"),
        pytest.param("h\u00e9llo \u2603 \U0001d11e.txt", id="non-ASCII"),
        pytest.param("spaces and\ttabs\nand newlines", id="whitespace"),
        pytest.param("*?[].txt", id="glob characters"),
    ],
)
def test_a_plain_relative_path_is_accepted(path: str) -> None:
    assert path_problem(path) is None


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        pytest.param("a\ud800b", NOT_UTF8, id="a lone surrogate"),
        pytest.param("", LENGTH, id="empty"),
        pytest.param(PATH_1024 + "e", LENGTH, id="1025 bytes"),
        pytest.param("\u00e9" * 513, LENGTH, id="1026 bytes in 513 characters"),
        pytest.param("x" * 256, COMPONENT, id="a component of 256 bytes"),
        pytest.param("a/" + "\u00e9" * 128, COMPONENT, id="a component of 256 bytes in 128 chars"),
        pytest.param("a//b", EMPTY_COMPONENT, id="an empty component"),
        pytest.param(".", EMPTY_COMPONENT, id="dot"),
        pytest.param("..", EMPTY_COMPONENT, id="dot-dot"),
        pytest.param("./a", EMPTY_COMPONENT, id="a leading dot component"),
        pytest.param("a/./b", EMPTY_COMPONENT, id="a dot component inside"),
        pytest.param("a/.", EMPTY_COMPONENT, id="a trailing dot component"),
        pytest.param("../etc/passwd", EMPTY_COMPONENT, id="a leading dot-dot"),
        pytest.param("a/../../b", EMPTY_COMPONENT, id="dot-dot inside"),
        pytest.param("/a", NOT_RELATIVE, id="absolute"),
        pytest.param("/", NOT_RELATIVE, id="the root"),
        pytest.param("a/", NOT_RELATIVE, id="a trailing slash"),
        pytest.param("a\x00b", NUL_OR_BACKSLASH, id="a NUL byte"),
        pytest.param("a\\b", NUL_OR_BACKSLASH, id="a backslash"),
        pytest.param("..\\x", NUL_OR_BACKSLASH, id="a windows-style dot-dot"),
        pytest.param("/".join(["d"] * 17), DEPTH, id="17 levels"),
    ],
)
def test_a_path_that_would_need_cleaning_up_is_refused_with_why(path: str, problem: str) -> None:
    assert path_problem(path) == problem


# --- decode_files ----------------------------------------------------------------------------


def refusal(
    files: list[dict[str, Any]], max_file: int = 1 << 20, max_total: int = 1 << 20
) -> RequestError:
    """The RequestError decode_files raises for ``files``."""
    with pytest.raises(RequestError) as caught:
        decode_files(files, max_file, max_total)
    return caught.value


@pytest.mark.parametrize(
    ("item", "data"),
    [
        pytest.param(
            {"content": "h\u00e9llo \u2603"}, "h\u00e9llo \u2603".encode(), id="utf-8 by default"
        ),
        pytest.param(
            {"content": "a\x00b", "encoding": "utf-8"}, b"a\x00b", id="utf-8 named, with a NUL"
        ),
        pytest.param({"content": "", "encoding": "utf-8"}, b"", id="empty text"),
        pytest.param({"content": "aGk=", "encoding": "base64"}, b"hi", id="base64 with one ="),
        pytest.param({"content": "aA==", "encoding": "base64"}, b"h", id="base64 with two ="),
        pytest.param(
            {"content": "aGV5", "encoding": "base64"}, b"hey", id="base64 unpadded length"
        ),
        pytest.param({"content": "", "encoding": "base64"}, b"", id="empty base64"),
        pytest.param({"content": "+/+/", "encoding": "base64"}, b"\xfb\xff\xbf", id="+ and /"),
        pytest.param(
            {"content": base64.b64encode(bytes(range(256))).decode(), "encoding": "base64"},
            bytes(range(256)),
            id="every byte",
        ),
    ],
)
def test_a_file_s_content_is_decoded_by_its_encoding(item: dict[str, Any], data: bytes) -> None:
    assert decode_files([{"path": "f", **item}], 1 << 20, 1 << 20) == [("f", data)]


def test_files_keep_their_order_and_paths() -> None:
    files = [
        {"path": "z.txt", "content": "1"},
        {"path": "a/b.bin", "content": "Ag==", "encoding": "base64"},
        {"path": "a/c", "content": ""},
    ]
    assert decode_files(files, 10, 10) == [("z.txt", b"1"), ("a/b.bin", b"\x02"), ("a/c", b"")]


def test_no_files_decode_to_nothing() -> None:
    assert decode_files([], 0, 0) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("aGk", NOT_PADDED, id="missing padding"),
        pytest.param("aA=", NOT_PADDED, id="one = of two"),
        pytest.param("aGk=\n", NOT_PADDED, id="a trailing newline"),
        pytest.param("aGk=aGk", NOT_PADDED, id="data after the padding, unpadded"),
        pytest.param("-_8=", NOT_STANDARD, id="the urlsafe alphabet"),
        pytest.param("aG-_", NOT_STANDARD, id="urlsafe characters inside"),
        pytest.param("aGk=aGk=", NOT_STANDARD, id="padding in the middle"),
        pytest.param("a===", NOT_STANDARD, id="three ="),
        pytest.param("====", NOT_STANDARD, id="only padding"),
        pytest.param("aG k", NOT_STANDARD, id="a space"),
        pytest.param("aGk\n", NOT_STANDARD, id="a newline inside"),
        pytest.param("aGk\u00e9", NOT_STANDARD, id="a non-ASCII character"),
    ],
)
def test_base64_that_is_not_strict_padded_rfc_4648_is_refused(content: str, message: str) -> None:
    error = refusal(
        [
            {"path": "ok", "content": "", "encoding": "base64"},
            {"path": "in/x.bin", "content": content, "encoding": "base64"},
        ]
    )
    assert error.message == f"files[1].content {message}"
    assert error.details == {"field": "files", "index": 1, "path": "in/x.bin"}


def test_text_content_with_a_lone_surrogate_is_refused() -> None:
    error = refusal([{"path": "t.txt", "content": "a\udc80b"}])
    assert error.message == "files[0].content holds a lone surrogate, not UTF-8 text."
    assert error.details == {"field": "files", "index": 0, "path": "t.txt"}


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("../up", EMPTY_COMPONENT),
        ("/abs", NOT_RELATIVE),
        ("a\\b", NUL_OR_BACKSLASH),
        ("x" * 256, COMPONENT),
        ("/".join(["d"] * 17), DEPTH),
    ],
    ids=["dot-dot", "absolute", "backslash", "long component", "17 levels"],
)
def test_a_bad_path_is_refused_naming_its_index_and_path(path: str, problem: str) -> None:
    error = refusal([{"path": "fine", "content": ""}, {"path": path, "content": "x"}])
    assert error.message == f'files[1].path "{path[:200]}" {problem}.'
    assert error.details == {"field": "files", "index": 1, "path": path}


def test_a_long_bad_path_is_cut_in_the_sentence_but_whole_in_the_details() -> None:
    path = "a/" + "x" * 300
    error = refusal([{"path": path, "content": ""}])
    assert error.message == f'files[0].path "{path[:200]}" {COMPONENT}.'
    assert error.details["path"] == path


def test_the_path_is_checked_before_the_content() -> None:
    error = refusal([{"path": "/abs", "content": "not base64", "encoding": "base64"}])
    assert error.message == f'files[0].path "/abs" {NOT_RELATIVE}.'


@pytest.mark.parametrize(
    ("item", "data"),
    [
        ({"path": "big", "content": "x" * 10}, b"x" * 10),
        ({"path": "big", "content": "\u00e9" * 5}, "\u00e9".encode() * 5),
        (
            {"path": "big", "content": base64.b64encode(b"x" * 10).decode(), "encoding": "base64"},
            b"x" * 10,
        ),
    ],
    ids=["text", "non-ASCII text counted in bytes", "base64 counted decoded"],
)
def test_a_file_of_exactly_the_per_file_limit_is_accepted(
    item: dict[str, Any], data: bytes
) -> None:
    assert decode_files([item], 10, 100) == [("big", data)]


@pytest.mark.parametrize(
    "item",
    [
        {"path": "big", "content": "x" * 11},
        {"path": "big", "content": "\u00e9" * 5 + "x"},
        {"path": "big", "content": base64.b64encode(b"x" * 11).decode(), "encoding": "base64"},
    ],
    ids=["text", "non-ASCII text counted in bytes", "base64 counted decoded"],
)
def test_a_file_over_the_per_file_limit_is_refused_with_its_size(item: dict[str, Any]) -> None:
    error = refusal([{"path": "small", "content": ""}, item], max_file=10, max_total=100)
    assert error.message == (
        'files[1] ("big") is 11 bytes; the limit per file is 10 bytes (PYEXEC_FILE_SIZE_MB).'
    )
    assert error.details == {"field": "files", "index": 1, "path": "big"}


def test_files_adding_up_to_exactly_the_total_limit_are_accepted() -> None:
    files = [{"path": name, "content": "x" * 4} for name in ("a", "b", "c")]
    assert [len(data) for _, data in decode_files(files, 4, 12)] == [4, 4, 4]


def test_files_over_the_total_limit_are_refused_at_the_file_that_passes_it() -> None:
    files = [{"path": name, "content": "x" * 4} for name in ("a", "b", "c", "d")]
    files[2]["content"] = "x" * 5
    error = refusal(files, max_file=8, max_total=12)
    assert error.message == (
        'The files add up to more than 12 bytes at files[2] ("c"); '
        "raise PYEXEC_MAX_FILES_BYTES or send less."
    )
    assert error.details == {"field": "files", "index": 2, "path": "c"}


def test_a_path_sent_twice_is_refused_at_its_second_index() -> None:
    files = [
        {"path": "a", "content": ""},
        {"path": "dir/b", "content": ""},
        {"path": "dir/b", "content": "other"},
    ]
    error = refusal(files)
    assert error.message == 'files[2].path "dir/b" is also files[1].path.'
    assert error.details == {"field": "files", "index": 2, "path": "dir/b"}


@pytest.mark.parametrize(
    ("paths", "index", "inside", "prefix", "of"),
    [
        (["a", "a/b"], 1, "a/b", "a", 0),
        (["a/b", "a"], 0, "a/b", "a", 1),
        (["x/y", "x/y/z/w"], 1, "x/y/z/w", "x/y", 0),
        (["ok", "d/e/f", "d"], 1, "d/e/f", "d", 2),
    ],
    ids=["file then inside it", "inside it then the file", "two levels down", "far apart"],
)
def test_a_path_inside_another_file_s_path_is_refused(
    paths: list[str], index: int, inside: str, prefix: str, of: int
) -> None:
    error = refusal([{"path": path, "content": ""} for path in paths])
    assert error.message == (
        f'files[{index}].path "{inside}" is inside files[{of}].path "{prefix}", which is a file.'
    )
    assert error.details == {"field": "files", "index": index, "path": inside}


@pytest.mark.parametrize(
    "paths",
    [["a", "ab/c"], ["a/b", "a/c"], ["a.txt", "a/x"], ["d/e", "d/f/g", "d/f/h"]],
    ids=["a shared first letter", "siblings", "a name prefix", "a shared directory"],
)
def test_paths_that_share_a_directory_or_a_prefix_of_characters_are_fine(
    paths: list[str],
) -> None:
    files = [{"path": path, "content": ""} for path in paths]
    assert [path for path, _ in decode_files(files, 1, 1)] == paths


# --- pattern_problem -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    ["*", "**", "out.csv", "out/*.csv", "**/*.png", ".env", "**/.*", "[ab]?.txt", "a/**/b", "..x"],
)
def test_a_relative_glob_pattern_is_accepted(pattern: str) -> None:
    assert pattern_problem(pattern) is None


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("/etc/*", "must be relative to the working directory"),
        ("/", "must be relative to the working directory"),
        ("a//b", EMPTY_COMPONENT),
        ("a/", EMPTY_COMPONENT),
        ("./a", EMPTY_COMPONENT),
        ("..", EMPTY_COMPONENT),
        ("../*", EMPTY_COMPONENT),
        ("a/./b", EMPTY_COMPONENT),
        ("a\\*", NUL_OR_BACKSLASH),
        ("a\x00", NUL_OR_BACKSLASH),
    ],
    ids=[
        "absolute",
        "the root",
        "an empty component",
        "a trailing slash",
        "a leading dot",
        "dot-dot",
        "dot-dot then star",
        "a dot inside",
        "a backslash",
        "a NUL byte",
    ],
)
def test_a_pattern_that_cannot_match_is_refused_with_why(pattern: str, problem: str) -> None:
    assert pattern_problem(pattern) == problem


# --- mime_type -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("table.csv", "text/csv"),
        ("TABLE.CSV", "text/csv"),
        ("photo.JpEg", "image/jpeg"),
        ("out/plot.png", "image/png"),
        ("a.b.c/data.parquet", "application/vnd.apache.parquet"),
        ("archive.tar.gz", DEFAULT_MIME_TYPE),
        ("README", DEFAULT_MIME_TYPE),
        ("Makefile.", DEFAULT_MIME_TYPE),
        ("dir.json/file", DEFAULT_MIME_TYPE),
        (".json", DEFAULT_MIME_TYPE),
        (".bashrc", DEFAULT_MIME_TYPE),
        ("..csv", DEFAULT_MIME_TYPE),
        (".config.json", "application/json"),
        ("a/.hidden.YML", "application/yaml"),
        ("x.unknown", DEFAULT_MIME_TYPE),
    ],
    ids=[
        "lower case",
        "upper case",
        "mixed case",
        "in a directory",
        "dots in the directory",
        "only the last extension counts",
        "no extension",
        "an empty extension",
        "an extension on the directory only",
        "a dotfile named like an extension",
        "a dotfile",
        "a dotfile with two dots",
        "a dotfile with an extension",
        "a dotfile with an upper-case extension",
        "an unknown extension",
    ],
)
def test_the_mime_type_comes_from_the_extension_in_the_fixed_table(
    path: str, expected: str
) -> None:
    assert mime_type(path) == expected


def test_every_extension_in_the_table_is_lower_case_and_maps_to_a_type() -> None:
    for extension, kind in MIME_TYPES.items():
        assert extension == extension.lower()
        assert "/" in kind
        assert mime_type(f"f.{extension.upper()}") == kind


# --- answer_entries --------------------------------------------------------------------------

CAPS = FileCaps(max_files=3, max_file_bytes=8, max_total_bytes=12)


@pytest.mark.parametrize(
    ("data", "encoding", "content"),
    [
        pytest.param(b"plain text\n", "utf-8", "plain text\n", id="ASCII"),
        pytest.param("h\u00e9 \u2603".encode(), "utf-8", "h\u00e9 \u2603", id="UTF-8"),
        pytest.param(b"", "utf-8", "", id="empty"),
        pytest.param(b"a\x00b", "base64", "YQBi", id="a NUL byte"),
        pytest.param(b"\xff\xfe", "base64", "//4=", id="invalid UTF-8"),
        pytest.param(b"ab\xe2\x82", "base64", "YWLigg==", id="UTF-8 cut mid-character"),
        pytest.param(b"\xed\xa0\x80", "base64", "7aCA", id="an encoded surrogate"),
        pytest.param(b"\xc0\xaf", "base64", "wK8=", id="an overlong encoding"),
        pytest.param(b"\x89PNG\r\n", "base64", "iVBORw0K", id="a PNG header"),
    ],
)
def test_a_returned_file_is_text_when_strict_utf8_without_nul_else_base64(
    data: bytes, encoding: str, content: str
) -> None:
    caps = FileCaps(1, len(data), len(data))
    entries = answer_entries([{"path": "f.txt", "size": len(data)}], data, caps)
    assert entries == [
        {
            "path": "f.txt",
            "size": len(data),
            "mime_type": "text/plain",
            "encoding": encoding,
            "content": content,
        }
    ]
    if encoding == "base64":
        assert base64.b64decode(content, validate=True) == data


def test_a_listing_becomes_entries_taking_the_bytes_in_order() -> None:
    listing = [
        {"path": "a.csv", "size": 4},
        {"path": "b/big.bin", "size": 99, "omitted": "file_too_large"},
        {"path": "b/c.bin", "size": 2},
        {"path": "link", "size": 11, "omitted": "symlink"},
        {"path": "z.json", "size": 2},
    ]
    assert answer_entries(listing, b"x,y\n\x00\x01{}", CAPS) == [
        {
            "path": "a.csv",
            "size": 4,
            "mime_type": "text/csv",
            "encoding": "utf-8",
            "content": "x,y\n",
        },
        {"path": "b/big.bin", "size": 99, "omitted": "file_too_large"},
        {
            "path": "b/c.bin",
            "size": 2,
            "mime_type": DEFAULT_MIME_TYPE,
            "encoding": "base64",
            "content": "AAE=",
        },
        {"path": "link", "size": 11, "omitted": "symlink"},
        {
            "path": "z.json",
            "size": 2,
            "mime_type": "application/json",
            "encoding": "utf-8",
            "content": "{}",
        },
    ]


def test_an_empty_listing_without_bytes_is_no_files() -> None:
    assert answer_entries([], b"", CAPS) == []


@pytest.mark.parametrize("reason", sorted(OMITTED))
def test_every_omitted_reason_is_listed_without_content_or_bytes(reason: str) -> None:
    listing = [{"path": "a", "size": 10**9, "omitted": reason}, {"path": "b", "size": 1}]
    assert answer_entries(listing, b"x", CAPS) == [
        {"path": "a", "size": 10**9, "omitted": reason},
        {
            "path": "b",
            "size": 1,
            "mime_type": DEFAULT_MIME_TYPE,
            "encoding": "utf-8",
            "content": "x",
        },
    ]


def test_files_exactly_at_every_cap_are_accepted() -> None:
    listing = [{"path": "a", "size": 8}, {"path": "b", "size": 4}, {"path": "c", "size": 0}]
    entries = answer_entries(listing, b"x" * 12, CAPS)
    assert entries is not None
    assert [entry["size"] for entry in entries] == [8, 4, 0]


def test_omitted_entries_do_not_count_against_the_file_cap() -> None:
    listing = [{"path": f"{i:02}", "size": 0, "omitted": "too_many_files"} for i in range(20)]
    listing += [{"path": f"z{i}", "size": 1} for i in range(3)]
    entries = answer_entries(listing, b"abc", CAPS)
    assert entries is not None
    assert len(entries) == 23


def test_exactly_max_listed_entries_are_accepted() -> None:
    listing = [{"path": f"{i:05}", "size": 0, "omitted": "symlink"} for i in range(MAX_LISTED)]
    entries = answer_entries(listing, b"", CAPS)
    assert entries is not None
    assert len(entries) == MAX_LISTED


def test_paths_are_ordered_by_code_point_as_python_sorts_them() -> None:
    paths = sorted(["Z", "a", "a/b", "a.b", "a b", "\u00e9", "\U0001d11e", "\uffff"])
    listing = [{"path": path, "size": 0} for path in paths]
    entries = answer_entries(listing, b"", FileCaps(10, 0, 0))
    assert entries is not None
    assert [entry["path"] for entry in entries] == paths


def entry(path: Any = "a", size: Any = 1, **extra: Any) -> dict[str, Any]:
    return {"path": path, "size": size, **extra}


FORGED: list[Any] = [
    pytest.param(None, b"", id="no listing"),
    pytest.param({"a": 1}, b"x", id="a dict for a listing"),
    pytest.param("a", b"", id="a string for a listing"),
    pytest.param([entry("b"), entry("a")], b"xy", id="unsorted"),
    pytest.param([entry("a"), entry("a")], b"xy", id="a duplicate path"),
    pytest.param([entry("a", 0, omitted="symlink"), entry("a")], b"x", id="a duplicate omitted"),
    pytest.param([entry("../x")], b"x", id="a dot-dot path"),
    pytest.param([entry("/etc/passwd")], b"x", id="an absolute path"),
    pytest.param([entry("a\\b")], b"x", id="a backslash"),
    pytest.param([entry("")], b"x", id="an empty path"),
    pytest.param([entry("a/")], b"x", id="a trailing slash"),
    pytest.param([entry("x" * 256)], b"x", id="a long component"),
    pytest.param([entry("\ud800")], b"x", id="a lone surrogate"),
    pytest.param([entry(1)], b"x", id="a number for a path"),
    pytest.param([entry("a", 2)], b"x", id="fewer bytes than the size"),
    pytest.param([entry("a", 1)], b"xy", id="more bytes than the sizes"),
    pytest.param([entry("a", 0, omitted="symlink")], b"x", id="bytes for an omitted entry"),
    pytest.param([], b"x", id="bytes without a listing"),
    pytest.param([entry(c) for c in "abcd"], b"wxyz", id="over the file cap"),
    pytest.param([entry("a", 9)], b"x" * 9, id="over the per-file cap"),
    pytest.param([entry("a", 8), entry("b", 5)], b"x" * 13, id="over the total cap"),
    pytest.param(
        [entry(f"{i:05}", 0, omitted="symlink") for i in range(MAX_LISTED + 1)],
        b"",
        id="more entries than may be listed",
    ),
    pytest.param([entry("a", "1")], b"x", id="a string size"),
    pytest.param([entry("a", 1.0)], b"x", id="a float size"),
    pytest.param([entry("a", True)], b"x", id="a bool size"),
    pytest.param([entry("a", False, omitted="symlink")], b"", id="a bool size, omitted"),
    pytest.param([entry("a", None)], b"", id="a null size"),
    pytest.param([entry("a", -1, omitted="symlink")], b"", id="a negative size"),
    pytest.param([entry("a", 2**53, omitted="symlink")], b"", id="a size of 2**53"),
    pytest.param([{"path": "a"}], b"", id="no size"),
    pytest.param([{"size": 0}], b"", id="no path"),
    pytest.param([entry("a", 0, omitted="gone")], b"", id="an unknown reason"),
    pytest.param([entry("a", 0, omitted=None)], b"", id="a null reason"),
    pytest.param([entry("a", 0, omitted=1)], b"", id="a number for a reason"),
    pytest.param([entry("a", 1, content="x")], b"x", id="an extra key"),
    pytest.param([entry("a", 1, mime_type="text/plain")], b"x", id="a mime_type of its own"),
    pytest.param([["a", 1]], b"x", id="a list for an entry"),
    pytest.param(["a"], b"x", id="a string for an entry"),
]


@pytest.mark.parametrize(("listing", "blob"), FORGED)
def test_a_listing_the_runner_would_not_write_is_forged(listing: Any, blob: bytes) -> None:
    assert answer_entries(listing, blob, CAPS) is None


@pytest.mark.parametrize(
    "reason", [[], {}, ["symlink"]], ids=["a list", "a dict", "a list of a reason"]
)
def test_an_unhashable_omitted_reason_is_forged_not_an_exception(reason: Any) -> None:
    assert answer_entries([entry("a", 0, omitted=reason)], b"", CAPS) is None
