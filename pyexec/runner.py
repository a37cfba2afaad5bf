"""The program that runs inside the jail: load one script, call its main(), report.

It is started by nsjail as the jail's pid 1 with ``python -I -S -B -u -c <bootstrap>``;
the jailed uid cannot read the service's files, so its code, compiled once, comes
through an fd (pyexec/runner_code.py).
``-S`` skips the site module (a millisecond per jail); ``_site_lite`` does the two
things of it a script can notice: the sandbox venv's packages and ``exit()``.
It uses only the standard library and must not import anything from ``pyexec``.

Protocol, over two pipes that nsjail passes through (``--pass_fd``); the framing
is ``pyexec/protocol.py``'s, copied byte for byte into the PROTOCOL block below:

1. It imports the modules named by ``--preimport`` (so a warm jail pays for
   numpy/pandas before the request arrives), then writes its ready line on the
   result fd (the CPU it spent getting ready, so the service can subtract it).
2. It reads one request from the control fd: a header line and the script's source.
3. It runs the script and writes exactly one JSON report on the result fd:
   ``{"status": "ok", "result": ..., "usage": {...}}`` or
   ``{"status": "error", "kind": ..., "error": ..., "usage": {...}}``, ending in a
   newline; it exits when the service closes the control fd (after reading the
   jail's cgroup figures). ``usage`` counts from the hand-over.

The result never travels on stdout, so whatever the script prints is returned
byte-exact and cannot be mistaken for a result.

Every jail pays for this module's imports, so it keeps them to builtins and a few
cheap modules (``posix`` rather than ``os``, which imports six more; no ``types``;
``json``, ``inspect``, ``typing`` and ``traceback`` would triple a
light jail's start-up CPU); heavier ones are imported only on the paths that
need them, and the report's JSON is written here. Not even ``math`` or ``_json``:
each is a shared library in most builds, whose loading costs a jail ~0.3 ms, and a
hello world needs neither (plain ASCII strings are quoted as they are; others go
through ``_json``'s C encoder, imported then).
"""

from __future__ import annotations

import posix
import resource
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import CodeType
    from typing import Any

INFINITY = float("inf")
# The standard library's directories, as the runner starts (-I -S): where _json is
# imported from when first needed, after the script ran with /data on sys.path.
STDLIB_PATH = tuple(sys.path)
STRING_ENCODER: list[Callable[[str], str]] = []  # _json's, once imported

# --- PROTOCOL (pyexec/protocol.py and pyexec/runner.py hold this block byte for byte) ---
READY_PREFIX = b"ready "
LINE_END = b"\n"
MAX_INT_DIGITS = 4300  # CPython's int <-> str limit; longer integers are refused both ways


def ready_line(cpu_ms: float) -> bytes:
    """The runner's ready line: the CPU milliseconds it spent getting ready."""
    return READY_PREFIX + f"{cpu_ms:.3f}".encode() + LINE_END


def parse_ready(line: bytes) -> float | None:
    """The CPU milliseconds of a ready line (without its newline), or None."""
    if not line.startswith(READY_PREFIX):
        return None
    try:
        return float(line[len(READY_PREFIX) :])
    except ValueError:
        return None


def request_bytes(
    cpu_seconds: int, max_result_bytes: int, source: bytes, meta: bytes = b"", data: bytes = b""
) -> bytes:
    """The request: its header line, the script's source, then (only when the request
    has input or files) the meta JSON and the input files' bytes."""
    header = f"{cpu_seconds} {max_result_bytes} {len(source)} {len(meta)} {len(data)}"
    return header.encode() + LINE_END + source + meta + data


def parse_request_header(line: bytes) -> tuple[int, int, int, int, int]:
    """(cpu_seconds, max_result_bytes, source, meta and data lengths) of a request's
    header line."""
    cpu_seconds, max_result_bytes, source, meta, data = (int(field) for field in line.split())
    return cpu_seconds, max_result_bytes, source, meta, data


def report_frame(payload: bytes, files: bytes | None = None) -> bytes:
    """A report as it travels: the JSON text and the line end; when files were asked
    for, then their length on a line of its own and their bytes."""
    if files is None:
        return payload + LINE_END
    return payload + LINE_END + str(len(files)).encode() + LINE_END + files


def report_length(received: bytes | bytearray, with_files: bool) -> int | None:
    """How long the whole report frame is, once that can be told from ``received``
    (None before); a frame whose length line is not a number is as long as
    what has arrived (complete, and not the runner's)."""
    payload = first_line(received)
    if payload is None:
        return None
    end = len(payload) + len(LINE_END)
    if not with_files:
        return end
    size = first_line(received[end : end + 24])
    if size is None:
        return None if len(received) < end + 24 else len(received)
    if not size.isdigit():
        return len(received)
    return end + len(size) + len(LINE_END) + int(size)


def split_report(received: bytes, with_files: bool) -> tuple[bytes, bytes] | None:
    """(the report's JSON text, the files' bytes) of a whole frame, else None."""
    length = report_length(received, with_files)
    payload = first_line(received)
    if length is None or payload is None or length != len(received):
        return None
    if not with_files:
        return payload, b""
    end = len(payload) + len(LINE_END)
    size = first_line(received[end:])
    if size is None or not size.isdigit():
        return None
    return payload, received[end + len(size) + len(LINE_END) :]


def first_line(received: bytes | bytearray) -> bytes | None:
    """The first complete line received (a ready line, a request header or a
    report's JSON text) without its line end; None until the line end has arrived."""
    end = received.find(LINE_END)
    if end < 0:
        return None
    return bytes(received[:end])


# --- END PROTOCOL ---

SCRIPT_FILENAME = "<script>"
# Pending signals (and POSIX timers, which reserve one each) are counted per user
# namespace creator, i.e. against host root: a jail gets this many, not the host's.
MAX_PENDING_SIGNALS = 256
MAX_INT = 10**MAX_INT_DIGITS
MAX_TRACEBACK_FRAMES = 50
ASYNC_FLAGS = 0x80 | 0x200  # CO_COROUTINE | CO_ASYNC_GENERATOR


def _a_generator() -> Iterator[None]:
    yield None


# types.FunctionType and types.GeneratorType, as types itself makes them: the
# runner imports posix rather than os, and not types, to spare each jail ~1 ms.
FunctionType = type(_a_generator)
GeneratorType = type(_a_generator())
_SCRIPT_SOURCE: list[str] = []  # for tracebacks; linecache is imported only then


def _import_traceback() -> Any:
    """traceback, with the script's source known to linecache (imports re: only
    on the error path)."""
    import linecache
    import traceback

    for source in _SCRIPT_SOURCE[-1:]:
        linecache.cache[SCRIPT_FILENAME] = (
            len(source),
            None,
            source.splitlines(keepends=True),
            SCRIPT_FILENAME,
        )
    return traceback


class Report(Exception):
    """A finished outcome that is not a success: carries the JSON report."""

    def __init__(self, kind: str, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.payload: dict[str, Any] = {"status": "error", "kind": kind, "error": error}
        self.payload.update(extra)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = posix.write(fd, view)
        view = view[written:]


def _user_frames(tb: Any) -> list[dict[str, Any]]:
    """The traceback frames after the runner's own (which run from ``<string>``)."""
    traceback = _import_traceback()
    frames = []
    for frame in traceback.extract_tb(tb):
        if frame.filename == "<string>":
            continue
        frames.append(
            {
                "file": "script" if frame.filename == SCRIPT_FILENAME else frame.filename,
                "line": frame.lineno,
                "function": frame.name,
                "code": frame.line or "",
            }
        )
    return frames[-MAX_TRACEBACK_FRAMES:]


def _release_frames(tb: Any) -> None:
    """Drop the locals of the frames a MemoryError went through, so that what the
    script was building is freed before the report needs memory of its own (the
    traceback module may still have to be imported). Line numbers and code stay."""
    while tb is not None:
        try:
            tb.tb_frame.clear()
        except RuntimeError:
            pass  # a frame still running: the runner's own
        tb = tb.tb_next


def _exception_report(exc: BaseException, phase: str) -> Report:
    """Turn an exception raised by the script into its report."""
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None or (isinstance(code, int) and -(2**31) <= int.__index__(code) < 2**31):
            status = 0 if code is None else int.__index__(code)  # True -> 1
            return Report(
                "exited",
                f"The script called sys.exit({status}) {phase} instead of returning from main().",
                exit_code=status,
            )
        shown = "an integer out of range" if isinstance(code, int) else repr(_safe_str(code)[:200])
        return Report(
            "exited",
            f"The script called sys.exit({shown}) {phase} instead of returning from main().",
            exit_code=1,
        )
    if isinstance(exc, MemoryError):
        _release_frames(exc.__traceback__)
    frames = _user_frames(exc.__traceback__)
    exc_type = str.__str__(type(exc).__name__)[:200]
    traceback = _import_traceback()
    message = _safe_str(exc)[:2000]
    try:
        lines = traceback.format_exception(exc)
    except Exception:
        lines = [f"{exc_type}: {message}\n"]
    detail = {"type": exc_type, "message": message}
    text = "".join(line for line in lines if 'File "<string>"' not in line)
    if isinstance(exc, MemoryError):
        return Report(
            "memory_limit",
            f"The script ran out of memory {phase} (MemoryError).",
            exception=detail,
            traceback=frames,
        )
    if isinstance(exc, OSError) and exc.errno == 27:  # EFBIG: RLIMIT_FSIZE
        return Report(
            "file_size_limit",
            f"The script wrote a file larger than the file size limit {phase}.",
            exception=detail,
            traceback=frames,
        )
    extra: dict[str, Any] = {}
    sentence = f"{exc_type} {phase}: {message}" if message else f"{exc_type} {phase}."
    if isinstance(exc, ModuleNotFoundError) and isinstance(exc.name, str):
        extra["module"] = str.__str__(exc.name)[:200]
        sentence += ". GET /runtime lists the packages this service has."
    return Report(
        "exception",
        sentence,
        exception=detail,
        traceback=frames,
        traceback_text=_strip_runner_frames(text),
        **extra,
    )


def _safe_str(exc: object) -> str:
    """str(exc), or a note when the exception's own __str__ fails."""
    try:
        return str(exc)
    except Exception:
        return "<the exception's message could not be produced: its __str__ raised>"


def _strip_runner_frames(text: str) -> str:
    """Drop the runner's own frame lines from a formatted traceback."""
    out = []
    skip_next = False
    for line in text.splitlines(keepends=True):
        if skip_next:
            skip_next = False
            if line.startswith("    ") and not line.startswith("  File"):
                continue
        if line.startswith('  File "<string>"'):
            skip_next = True
            continue
        out.append(line.replace('File "<script>"', 'File "script"'))
    return "".join(out)[-20000:]


def _to_json(value: Any, coerce: dict[str, Any] | None = None) -> Any:
    """A plain-JSON copy of ``value``, or a Report naming the first bad part.

    numpy scalars and arrays are converted (``.item()``/``.tolist()``); with
    ``coerce`` (pyexec/coerce.py's functions, for ``coerce_result``) the everyday
    types of its table too; anything else that JSON cannot represent is rejected
    with its path, its type and a hint that works when followed.
    """
    return _Converter(coerce).convert(value, "result", 0)


def _plain_int(item: int, path: str) -> int:
    plain = int.__index__(item)
    if abs(plain) >= MAX_INT:
        raise Report(
            "invalid_result",
            f"{path} is an integer with more than {MAX_INT_DIGITS} digits, "
            "too long to send as JSON; return it as a string.",
            path=path,
            type="int",
        )
    return plain


COERCE_HINT = 'or send "coerce_result": true'


def _plain_float(item: float, path: str) -> float:
    if item != item or item in (INFINITY, -INFINITY):
        raise Report(
            "invalid_result",
            f"{path} is {item!r}, which JSON cannot represent "
            "(NaN and Infinity are not valid JSON). Return None in its place "
            f"(e.g. None if math.isnan(x) else x), {COERCE_HINT} to get null.",
            path=path,
            type="float",
        )
    return float.__float__(item)


class _Converter:
    """One conversion of a result; it remembers the containers on the current path
    (to refuse circular references).

    Builtin methods on purpose (``str.__str__``, ``int.__index__``, ``dict.items``):
    a subclass's overrides must not run (or lie) here.
    """

    def __init__(self, coerce: dict[str, Any] | None = None) -> None:
        self.numpy: Any = sys.modules.get("numpy")
        self.active: set[int] = set()
        self.coerce = coerce

    def convert(self, item: Any, path: str, depth: int) -> Any:
        if depth > 100:
            raise Report("invalid_result", f"{path} is nested more than 100 levels deep.")
        if item is None or isinstance(item, bool):
            return bool(item) if item is not None else None
        if isinstance(item, str):
            return str.__str__(item)
        if isinstance(item, int):
            return _plain_int(item, path)
        if isinstance(item, float):
            if self.coerce is not None:
                return self.coerce["coerce_float"](float.__float__(item))
            return _plain_float(item, path)
        if isinstance(item, (list, tuple, dict)):
            return self._container(item, path, depth)
        return self._other(item, path, depth)

    def _other(self, item: Any, path: str, depth: int) -> Any:
        """What is neither a JSON scalar nor a container: the coercion table's types
        (when asked for), numpy's, or a refusal with a hint."""
        if self.coerce is not None:
            try:
                known, replacement = self.coerce["coerce_value"](item)
            except ValueError as exc:
                raise Report("invalid_result", f"{path} {exc}.", path=path) from None
            if known:
                return self.convert(replacement, path, depth + 1)
        if self.numpy is not None and isinstance(item, (self.numpy.generic, self.numpy.ndarray)):
            return self._numpy(item, path, depth)
        raise _unsupported(path, item)

    def _numpy(self, item: Any, path: str, depth: int) -> Any:
        if getattr(item, "dtype", None) is not None and item.dtype.kind in "Mm":
            raise _unsupported(path, item)  # .tolist() would name a type never returned
        plain = item.item() if isinstance(item, self.numpy.generic) else item.tolist()
        if type(plain) is type(item):
            raise _unsupported(path, item)
        return self.convert(plain, path, depth)

    def _container(self, item: Any, path: str, depth: int) -> Any:
        if id(item) in self.active:
            raise Report("invalid_result", f"{path} contains itself (a circular reference).")
        self.active.add(id(item))
        try:
            if isinstance(item, dict):
                return self._dict(item, path, depth)
            items = list.__iter__(item) if isinstance(item, list) else tuple.__iter__(item)
            return [
                self.convert(sub, f"{path}[{index}]", depth + 1) for index, sub in enumerate(items)
            ]
        finally:
            self.active.discard(id(item))

    def _dict(self, item: dict[Any, Any], path: str, depth: int) -> dict[str, Any]:
        out = {}
        for key, sub in list(dict.items(item)):
            plain_key = self._key(key, path)
            if plain_key in out:
                raise Report(
                    "invalid_result",
                    f"{path} has the key {plain_key!r} twice once its keys are text.",
                    path=path,
                )
            out[plain_key] = self.convert(sub, f"{path}[{plain_key!r}]", depth + 1)
        return out

    def _key(self, key: Any, path: str) -> str:
        if isinstance(key, str):
            return str.__str__(key)
        text = self.coerce["coerce_key"](key) if self.coerce is not None else None
        if text is None:
            hint = "" if self.coerce is not None else f" Convert them with str(), {COERCE_HINT}."
            raise Report(
                "invalid_result",
                f"{path} has a key of type {type(key).__name__}; "
                f"JSON object keys must be strings.{hint}",
                path=path,
                type=type(key).__name__,
            )
        return str.__str__(text)


# Type (module, name) -> how to make it JSON yourself; each is followed by a test.
_HINTS = {
    ("pandas", "DataFrame"): 'Return json.loads(df.to_json(orient="records", date_format="iso"))',
    ("pandas", "Series"): 'Return json.loads(s.to_json(date_format="iso"))',
    ("pandas", "Timestamp"): "Return value.isoformat()",
    ("pandas", "Timedelta"): "Return value.total_seconds()",
    ("pandas", "NaTType"): "Return None in its place",
    ("pandas", "NAType"): "Return None in its place",
    ("datetime", "datetime"): "Return value.isoformat()",
    ("datetime", "date"): "Return value.isoformat()",
    ("datetime", "time"): "Return value.isoformat()",
    ("datetime", "timedelta"): "Return value.total_seconds()",
    ("decimal", "Decimal"): "Return str(value) (or float(value) if precision may go)",
    ("uuid", "UUID"): "Return str(value)",
    ("builtins", "set"): "Return sorted(value) (or list(value))",
    ("builtins", "frozenset"): "Return sorted(value) (or list(value))",
    ("numpy", "datetime64"): "Return str(numpy.datetime_as_string(value))",
    ("numpy", "timedelta64"): 'Return float(value / numpy.timedelta64(1, "s"))',
}
_BYTES_HINT = (
    "Return base64.b64encode(value).decode() (import base64), or write it to a file and "
    'ask for it with "output_files"'
)


def _unsupported(path: str, item: Any) -> Report:
    type_name = type(item).__name__
    module = type(item).__module__
    qualified = type_name if module == "builtins" else f"{module}.{type_name}"
    top = module.partition(".")[0]
    hint = _HINTS.get((top, type_name))
    if isinstance(item, (bytes, bytearray, memoryview)):
        hint = _BYTES_HINT
    elif top == "numpy" and type_name == "ndarray":
        hint = "Return numpy.datetime_as_string(value).tolist()"
        if item.dtype.kind == "m":
            hint = 'Return (value / numpy.timedelta64(1, "s")).tolist()'
    elif hint is None and hasattr(type(item), "__dataclass_fields__"):
        hint = "Return dataclasses.asdict(value) (import dataclasses)"
    elif (
        hint is None
        and isinstance(getattr(item, "value", None), (str, int))
        and any(base.__name__ == "Enum" for base in type(item).__mro__)
    ):
        hint = "Return value.value"
    text = (
        f" {hint}, {COERCE_HINT}."
        if hint
        else f" Convert it to a list, dict, str or number, {COERCE_HINT} for the types it knows."
    )
    return Report(
        "invalid_result",
        f"{path} is of type {qualified}, which is not JSON-serializable.{text}",
        path=path,
        type=qualified,
    )


def _cpu_ms(*usages: resource.struct_rusage) -> float:
    return 1000 * sum(usage.ru_utime + usage.ru_stime for usage in usages)


def _usage(start: resource.struct_rusage) -> dict[str, float]:
    """CPU time since the hand-over (this process and the children it waited for),
    and the peak RSS of any of them."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "cpu_time_ms": round(_cpu_ms(own, children) - _cpu_ms(start), 3),
        "peak_memory_bytes": 1024 * max(own.ru_maxrss, children.ru_maxrss),
    }


def _limit_cpu(seconds: int) -> None:
    """Cap CPU time at ``seconds`` from now (not from the jail's start).

    The runner is its pid namespace's init, which the kernel spares from SIGXCPU,
    so the hard limit (SIGKILL) is set at the same point. Lowering needs no privilege.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = -int(-(usage.ru_utime + usage.ru_stime) // 1)  # rounded up
    resource.setrlimit(resource.RLIMIT_CPU, (used + seconds, used + seconds))


def _load_main(source: str, with_input: bool = False) -> Any:
    """Compile and execute the script's module code; return its ``main``."""
    code = _compile(source)
    _SCRIPT_SOURCE.append(source)
    # Not "__main__": an `if __name__ == "__main__": main()` guard must not run
    # main a second time.
    namespace: dict[str, Any] = {"__name__": "__script__", "__builtins__": __builtins__}
    try:
        exec(code, namespace)
    except BaseException as exc:
        raise _exception_report(exc, "while loading the script") from None
    if "main" not in namespace:
        raise Report("no_main", "The script does not define a function named main().")
    main = namespace["main"]
    if not callable(main):
        raise Report(
            "main_not_callable",
            f"main is a {type(main).__name__}, not a function; define `def main():`.",
        )
    _check_signature(main, with_input)
    return main


def _compile(source: str) -> CodeType:
    """The script's code object, or a syntax_error Report."""
    try:
        return compile(source, SCRIPT_FILENAME, "exec", dont_inherit=True)
    except SyntaxError as exc:
        line = exc.lineno or 0
        raise Report(
            "syntax_error",
            f"SyntaxError on line {line}: {exc.msg}.",
            line=line,
            column=exc.offset or 0,
            code=(exc.text or "").rstrip("\n")[:500],
        ) from None
    except ValueError as exc:  # e.g. source with null bytes
        raise Report("syntax_error", f"The script cannot be compiled: {exc}.") from None


def _check_signature(main: Any, with_input: bool) -> None:
    """Refuse an async main, or one that cannot be called as it will be: ``main()``,
    or ``main(input)`` when the request has "input" (main_async, main_signature)."""
    wanted = 1 if with_input else 0
    if isinstance(main, FunctionType):
        # The common case, without importing inspect: read the code object.
        code = main.__code__
        if code.co_flags & (ASYNC_FLAGS):
            raise _async_main()
        required = code.co_argcount - len(main.__defaults__ or ())
        kw_required = code.co_kwonlyargcount - len(main.__kwdefaults__ or {})
        takes = code.co_argcount if not code.co_flags & 0x04 else wanted  # CO_VARARGS
        if required <= wanted <= takes and kw_required <= 0:
            return
    import inspect

    if inspect.iscoroutinefunction(main) or inspect.isasyncgenfunction(main):
        raise _async_main()
    try:
        signature = inspect.signature(main)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*([None] * wanted))
    except TypeError:
        if with_input:
            message = (
                f'main{signature} cannot take the request\'s "input" as its one argument; '
                'define `def main(input):`, or leave "input" out of the request.'
            )
        else:
            message = (
                f'main{signature} needs arguments, but the request has no "input"; '
                'define `def main():`, or send "input" to have it passed to main.'
            )
        raise Report("main_signature", message) from None


def _async_main() -> Report:
    return Report(
        "main_async",
        "main() is `async def`; define it with `def` and call asyncio.run(...) "
        "inside it if you need a coroutine.",
    )


def _run(source: str, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    meta = meta or {}
    with_input = "input" in meta
    main = _load_main(source, with_input)
    try:
        value = main(meta["input"]) if with_input else main()
    except BaseException as exc:
        raise _exception_report(exc, "in main()") from None
    if isinstance(value, GeneratorType):
        raise Report(
            "invalid_result",
            "main() returned a generator (it contains `yield`); return a list instead.",
            path="result",
            type="generator",
        )
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    result = _to_json(value, _load_coerce(meta["coerce"]) if "coerce" in meta else None)
    return {"status": "ok", "result": result}


def _json_string(text: str) -> str:
    """``text`` as an ASCII JSON string, as ``_json.encode_basestring_ascii`` writes
    it: printable ASCII without quotes or backslashes is quoted as it is, the rest
    goes through that encoder."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    encoded: str = _string_encoder()(text)
    return encoded


def _string_encoder() -> Callable[[str], str]:
    """_json's encoder, imported on first need from the standard library's own
    directories: the script's working directory may hold a _json.py. If it cannot be
    loaded (the script holds every fd it may open, say), the same escapes are
    written in Python: slower, but the script's own answer still goes out."""
    if not STRING_ENCODER:
        saved = sys.path
        sys.path = list(STDLIB_PATH)
        try:
            import _json

            STRING_ENCODER.append(_json.encode_basestring_ascii)
        except Exception:  # ImportError, MemoryError: the report goes out all the same
            STRING_ENCODER.append(_escaped_in_python)
        finally:
            sys.path = saved
    return STRING_ENCODER[0]


SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}


def _escaped_in_python(text: str) -> str:
    """What _json.encode_basestring_ascii writes, in Python."""
    parts = []
    for char in text:
        code = ord(char)
        if char in SHORT_ESCAPES:
            parts.append(SHORT_ESCAPES[char])
        elif 0x20 <= code < 0x7F:
            parts.append(char)
        elif code < 0x10000:
            parts.append(f"\\u{code:04x}")
        else:
            code -= 0x10000
            parts.append(f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}")
    return '"' + "".join(parts) + '"'


def _dump(value: Any) -> str:
    """JSON text for a plain value (what _to_json returns, and report fields).

    ASCII-only (non-ASCII as escapes), so lone surrogates survive; NaN and
    Infinity never reach here (_to_json refuses them).
    """
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if value != value or value in (INFINITY, -INFINITY):
            raise ValueError("NaN and Infinity are not JSON")
        return float.__repr__(value)
    if isinstance(value, dict):
        items = (f"{_json_string(str(k))}: {_dump(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_dump(item) for item in value) + "]"
    raise TypeError(f"{type(value).__name__} is not JSON")


def _encode(report: dict[str, Any], max_bytes: int) -> bytes:
    """The report as ASCII JSON. The limit is on the result's own JSON (what the
    client receives as ``result``); an error report over it keeps only its sentence."""
    if report.get("status") == "ok":
        result = _dump(report["result"])  # ASCII: one character is one byte
        if len(result) > max_bytes:
            return _encode(
                Report(
                    "result_too_large",
                    f"main() returned {len(result)} bytes of JSON; "
                    f"the limit is {max_bytes} bytes.",
                    size_bytes=len(result),
                    limit_bytes=max_bytes,
                    **({"files": report["files"]} if "files" in report else {}),
                ).payload,
                max_bytes,
            )
        fields = (
            f"{_json_string(key)}: {result if key == 'result' else _dump(value)}"
            for key, value in report.items()
        )
        return ("{" + ", ".join(fields) + "}").encode("ascii")
    data = _dump(report).encode("ascii")
    listing = len(_dump(report["files"])) if "files" in report else 0
    if len(data) - listing > max_bytes:
        # The listing has room of its own on the channel (the service's cap counts
        # it apart); the rest of an error report is held to the result's limit.
        report = {
            key: report[key] for key in ("status", "kind", "error", "files") if key in report
        }
        data = _dump(report).encode("ascii")
    return data


LAST_RESORT_REPORT = (
    b'{"status": "error", "kind": "invalid_result", '
    b'"error": "The result could not be reported: the script interfered with the runner."}'
)


def _final_report(
    report: dict[str, Any], ready_usage: resource.struct_rusage, max_result_bytes: int
) -> bytes:
    """The report as bytes; a result that cannot be encoded becomes invalid_result."""
    # The script may have lowered the recursion limit; converting needs some depth.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    report["usage"] = _usage(ready_usage)
    try:
        return _encode(report, max_result_bytes)
    except Exception as exc:
        unencodable = Report(
            "invalid_result",
            f"The result cannot be encoded as JSON: {type(exc).__name__}.",
            path="result",
            type=type(exc).__name__,
        ).payload
        unencodable["usage"] = report["usage"]
        if "files" in report:
            unencodable["files"] = report["files"]
        return _encode(unencodable, max_result_bytes)


def _read_request(fd: int) -> tuple[int, int, str, memoryview, memoryview]:
    """(cpu_seconds, max_result_bytes, script, meta, data) from the control pipe, which
    stays open: the service closes it once it has measured the jail (see main).

    The body is read into one buffer of its announced size: appending chunk by chunk
    would copy megabytes of input files over and over."""
    data = b""
    while (header := first_line(data)) is None:
        chunk = posix.read(fd, 1 << 16)
        if not chunk:
            raise EOFError("the service sent no request")
        data += chunk
    cpu_seconds, max_result_bytes, source_len, meta_len, data_len = parse_request_header(header)
    body = bytearray(source_len + meta_len + data_len)
    view = memoryview(body)
    got = data[len(header) + len(LINE_END) :]
    view[: len(got)] = got
    filled = len(got)
    while filled < len(body):
        count = posix.readv(fd, [view[filled:]])
        if not count:
            raise EOFError("the request was cut short")
        filled += count
    source = bytes(view[:source_len]).decode("utf-8", "surrogatepass")
    meta_end = source_len + meta_len
    return cpu_seconds, max_result_bytes, source, view[source_len:meta_end], view[meta_end:]


def _site_lite() -> None:
    """What site would have done that matters here: the venv's site-packages on
    sys.path (and sys.prefix), and the exit()/quit() builtins."""
    import _sitebuiltins
    import builtins

    venv = sys.executable.rsplit("/", 2)[0]  # <venv>/bin/python
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    sys.path.append(f"{venv}/lib/{version}/site-packages")
    sys.prefix = sys.exec_prefix = venv
    builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")
    builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")


def _run_reported(
    source: str, meta: dict[str, Any] | None = None, data: memoryview | None = None
) -> dict[str, Any]:
    """Write the request's files, run the script; its report whatever happens (a
    success or an error)."""
    meta = meta or {}
    try:
        if "files" in meta and data is not None:
            _write_files(meta["files"], data)
            # Free the request's copy: the files are in /data now, and their pages
            # there already count against the jail's memory.
            data.release()
        return _run(source, meta)
    except Report as failure:
        return failure.payload
    except BaseException as exc:
        return _exception_report(exc, "while checking the result").payload


def _load_coerce(source: str) -> dict[str, Any]:
    """pyexec/coerce.py's functions, from the source the service sent (the runner
    cannot import it, and every other request is spared compiling it)."""
    namespace: dict[str, Any] = {"__name__": "pyexec_coerce"}
    exec(compile(source, "<coerce_result>", "exec", dont_inherit=True), namespace)
    return namespace


def _parse_meta(meta: memoryview) -> dict[str, Any]:
    """The request's meta JSON; empty (and json never imported) for a bare script."""
    if not meta:
        return {}
    import json

    parsed: dict[str, Any] = json.loads(bytes(meta))
    if "output_files" in parsed:
        # Imported now, before the request's files are written: an uploaded
        # fnmatch.py or stat.py must not stand in for them when files are collected.
        import fnmatch  # noqa: F401
        import stat  # noqa: F401
    return parsed


def _write_files(files: list[list[Any]], data: memoryview) -> None:
    """The request's files into the working directory, before the script is loaded.

    The service checked every path (relative, no '..', no file inside another); each
    file is created new and never through a symlink, in a directory nothing else has
    written to yet."""
    import os  # frozen into CPython since 3.11: an uploaded os.py never stands in

    offset = 0
    for path, size in files:
        parent = os.path.dirname(path)
        try:
            if parent:
                os.makedirs(parent, exist_ok=True)
            fd = posix.open(
                path,
                posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC,
                0o644,
            )
            try:
                _write_all(fd, data[offset : offset + size])
            finally:
                posix.close(fd)
        except OSError as exc:
            raise _exception_report(exc, f"while writing the request's file {path!r}") from None
        offset += size


def _collect_from(
    workdir: str, patterns: list[str], caps: list[int]
) -> tuple[list[dict[str, Any]], bytes]:
    """_collect_files in the working directory, wherever the script moved to."""
    try:
        posix.chdir(workdir)
    except OSError:
        return [], b""
    return _collect_files(patterns, caps)


def _collect_files(patterns: list[str], caps: list[int]) -> tuple[list[dict[str, Any]], bytes]:
    """The working directory's files that match ``patterns``: their listing for the
    report, and the bytes of those that are sent (in listing order).

    Walked without following a symlink; each file is opened without following one and
    without blocking (a FIFO must not hang the runner), and sent only when the open
    file is a regular one. What is over a cap, or not a regular file, is listed with
    the reason and no bytes."""
    max_files, max_file_bytes, max_total_bytes = caps
    listing: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    total = 0
    for path in _matching(patterns):
        try:
            entry, content = _read_returned(path, max_file_bytes)
        except OSError:
            continue  # removed (or replaced) by the script's own processes meanwhile
        if content is not None and len(chunks) >= max_files:
            entry["omitted"], content = "too_many_files", None
        elif content is not None and total + len(content) > max_total_bytes:
            entry["omitted"], content = "total_too_large", None
        if content is not None:
            chunks.append(content)
            total += len(content)
        listing.append(entry)
    return listing, b"".join(chunks)


def _read_returned(path: str, max_file_bytes: int) -> tuple[dict[str, Any], bytes | None]:
    """One matched path: its listing entry, and its bytes when it is sent."""
    import stat

    info = posix.lstat(path)  # OSError when it vanished since the walk: not listed
    if stat.S_ISLNK(info.st_mode):
        return {"path": path, "size": info.st_size, "omitted": "symlink"}, None
    try:
        fd = posix.open(
            path, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_NONBLOCK | posix.O_CLOEXEC
        )
    except OSError:
        return {"path": path, "size": info.st_size, "omitted": "not_regular"}, None
    try:
        opened = posix.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            return {"path": path, "size": opened.st_size, "omitted": "not_regular"}, None
        if opened.st_size > max_file_bytes:
            return {"path": path, "size": opened.st_size, "omitted": "file_too_large"}, None
        parts = []
        left = opened.st_size
        while left > 0 and (chunk := posix.read(fd, min(left, 1 << 20))):
            parts.append(chunk)
            left -= len(chunk)
        content = b"".join(parts)
    finally:
        posix.close(fd)
    return {"path": path, "size": len(content)}, content


MAX_WALK_DEPTH = 16  # a path the service accepts has at most this many components
MAX_MATCHED = 2048  # the working directory's inode limit (nsjail.cfg)


MAX_PATH_BYTES = 1024  # as the service's path rules (pyexec/files.py)


def _matching(patterns: list[str]) -> list[str]:
    """Relative paths (sorted) of the entries below the working directory that match
    any pattern; directories are walked, not listed, each opened without following a
    symlink. A path the service would refuse as a file path (a name that is not
    UTF-8 or has a backslash, over MAX_PATH_BYTES, deeper than MAX_WALK_DEPTH)
    matches nothing."""
    compiled = [pattern.split("/") for pattern in patterns]
    found: list[str] = []
    pending: list[list[str]] = [[]]
    while pending and len(found) < MAX_MATCHED:
        prefix = pending.pop()
        for name, is_dir in _directory_entries("/".join(prefix) or "."):
            parts = [*prefix, name]
            if len("/".join(parts).encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
                continue
            if is_dir:
                if len(parts) < MAX_WALK_DEPTH:
                    pending.append(parts)
            elif any(_glob_match(pattern, parts) for pattern in compiled):
                found.append("/".join(parts))
    return sorted(found)[:MAX_MATCHED]


def _directory_entries(directory: str) -> list[tuple[str, bool]]:
    """(name, is a directory) of a directory's entries whose names the service would
    accept; none when it cannot be opened as a directory without following a symlink
    (it was replaced by one since the walk saw it)."""
    try:
        fd = posix.open(
            directory, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW | posix.O_CLOEXEC
        )
    except OSError:
        return []
    entries = []
    try:
        with posix.scandir(fd) as listing:
            for entry in listing:
                name = entry.name
                try:
                    name.encode("utf-8")
                except UnicodeEncodeError:
                    continue
                if "\\" not in name:
                    entries.append((name, entry.is_dir(follow_symlinks=False)))
    except OSError:
        pass
    finally:
        posix.close(fd)
    return entries


def _glob_match(pattern: list[str], parts: list[str]) -> bool:
    """Whether path components match pattern components: ``*``, ``?`` and ``[...]``
    within a component, ``**`` for zero or more components; a name that starts with
    "." matches only a pattern component that starts with "." (``**`` never does)."""
    from fnmatch import fnmatchcase

    # reachable[j]: the first i pattern components can match the first j parts.
    reachable = [True] + [False] * len(parts)
    for component in pattern:
        if component == "**":
            step = [False] * (len(parts) + 1)
            for j in range(len(parts) + 1):
                step[j] = reachable[j] or (
                    j > 0 and step[j - 1] and not parts[j - 1].startswith(".")
                )
        else:
            step = [False] + [
                reachable[j]
                and (component.startswith(".") or not parts[j].startswith("."))
                and fnmatchcase(parts[j], component)
                for j in range(len(parts))
            ]
        reachable = step
    return reachable[len(parts)]


def _send_report(
    result_fd: int,
    report: dict[str, Any],
    ready_usage: resource.struct_rusage,
    max_result_bytes: int,
    files: bytes | None = None,
) -> None:
    """Flush what the script printed, then write the report (and the returned files'
    bytes, when they were asked for) on the result fd."""
    try:
        data = _final_report(report, ready_usage, max_result_bytes)
    except BaseException:
        data = LAST_RESORT_REPORT  # the script broke the runner's own machinery
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    try:
        _write_all(result_fd, report_frame(data, files))
    except OSError:
        pass  # the script closed or broke the result fd: the service sees no result


def main() -> None:
    """Entry point inside the jail; see the module docstring for the protocol."""
    _site_lite()
    args = sys.argv[1:]
    control_fd = int(args[args.index("--control-fd") + 1])
    result_fd = int(args[args.index("--result-fd") + 1])
    preimport = args[args.index("--preimport") + 1] if "--preimport" in args else ""
    for name in filter(None, preimport.split(",")):
        __import__(name)
    posix.set_inheritable(result_fd, False)
    resource.setrlimit(resource.RLIMIT_SIGPENDING, (MAX_PENDING_SIGNALS, MAX_PENDING_SIGNALS))
    runner_pid = posix.getpid()
    ready_usage = resource.getrusage(resource.RUSAGE_SELF)
    _write_all(result_fd, ready_line(_cpu_ms(ready_usage)))
    cpu_seconds, max_result_bytes, source, meta_bytes, data = _read_request(control_fd)
    posix.set_inheritable(control_fd, False)
    _limit_cpu(cpu_seconds)
    sys.argv = ["script"]
    # The working directory (nsjail.cfg's cwd, empty until now) holds the request's
    # files, and modules uploaded there are imported from it.
    workdir = posix.getcwd()
    sys.path.insert(0, workdir)
    meta = _parse_meta(meta_bytes)
    meta_bytes.release()  # with data's release, the request's buffer is freed
    report = _run_reported(source, meta, data)
    if posix.getpid() != runner_pid:
        posix._exit(0)  # a forked child returned from main(): only the runner reports
    files = None
    if "output_files" in meta:
        report["files"], files = _collect_from(workdir, meta["output_files"], meta["caps"])
    _send_report(result_fd, report, ready_usage, max_result_bytes, files)
    try:
        # Stay alive until the service has read the jail's cgroup figures (it
        # closes the control pipe then): they go with the jail when it exits.
        posix.read(control_fd, 1)
    except OSError:
        pass
    posix._exit(0)


if __name__ == "__main__":
    main()
