"""The program that runs inside the jail: load one script, call its main(), report.

It is started by nsjail as the jail's pid 1 with ``python -I -S -B -u -c <this source>``
(the jailed uid cannot read the service's files, so the source travels in argv).
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
cheap modules (``json``, ``inspect``, ``typing`` and ``traceback`` would triple a
light jail's start-up CPU); heavier ones are imported only on the paths that
need them, and the report's JSON is written here with the C string encoder.
"""

from __future__ import annotations

import math
import os
import resource
import sys
import types
from _json import encode_basestring_ascii

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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


def request_bytes(cpu_seconds: int, max_result_bytes: int, source: bytes) -> bytes:
    """The request: its header line, then the script's source."""
    header = f"{cpu_seconds} {max_result_bytes} {len(source)}"
    return header.encode() + LINE_END + source


def parse_request_header(line: bytes) -> tuple[int, int, int]:
    """(cpu_seconds, max_result_bytes, source length) of a request's header line."""
    cpu_seconds, max_result_bytes, length = (int(field) for field in line.split())
    return cpu_seconds, max_result_bytes, length


def report_frame(payload: bytes) -> bytes:
    """A report as it travels: the JSON text, then the line end."""
    return payload + LINE_END


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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
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
    return Report(
        "exception",
        f"{exc_type} {phase}: {message}" if message else f"{exc_type} {phase}.",
        exception=detail,
        traceback=frames,
        traceback_text=_strip_runner_frames(text),
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


def _to_json(value: Any) -> Any:
    """A plain-JSON copy of ``value``, or a Report naming the first bad part.

    numpy scalars and arrays are converted (``.item()``/``.tolist()``); anything
    else that JSON cannot represent is rejected with its path and type.
    """
    return _Converter().convert(value, "result", 0)


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


def _plain_float(item: float, path: str) -> float:
    if math.isnan(item) or math.isinf(item):
        raise Report(
            "invalid_result",
            f"{path} is {item!r}, which JSON cannot represent "
            "(NaN and Infinity are not valid JSON).",
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

    def __init__(self) -> None:
        self.numpy: Any = sys.modules.get("numpy")
        self.active: set[int] = set()

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
            return _plain_float(item, path)
        if self.numpy is not None and isinstance(item, (self.numpy.generic, self.numpy.ndarray)):
            return self._numpy(item, path, depth)
        if isinstance(item, (list, tuple, dict)):
            return self._container(item, path, depth)
        raise _unsupported(path, item)

    def _numpy(self, item: Any, path: str, depth: int) -> Any:
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
            if not isinstance(key, str):
                raise Report(
                    "invalid_result",
                    f"{path} has a key of type {type(key).__name__}; "
                    "JSON object keys must be strings.",
                    path=path,
                    type=type(key).__name__,
                )
            plain_key = str.__str__(key)
            out[plain_key] = self.convert(sub, f"{path}[{plain_key!r}]", depth + 1)
        return out


def _unsupported(path: str, item: Any) -> Report:
    type_name = type(item).__name__
    module = type(item).__module__
    qualified = type_name if module == "builtins" else f"{module}.{type_name}"
    hint = ""
    if module.startswith("pandas"):
        hint = " Convert it first, e.g. with .to_dict() or .tolist()."
    elif isinstance(item, (set, frozenset)):
        hint = " Convert it to a list first."
    elif isinstance(item, bytes):
        hint = " Decode it to a str first."
    return Report(
        "invalid_result",
        f"{path} is of type {qualified}, which is not JSON-serializable.{hint}",
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
    used = math.ceil(usage.ru_utime + usage.ru_stime)
    resource.setrlimit(resource.RLIMIT_CPU, (used + seconds, used + seconds))


def _load_main(source: str) -> Any:
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
    _check_callable_without_arguments(main)
    return main


def _compile(source: str) -> types.CodeType:
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


def _check_callable_without_arguments(main: Any) -> None:
    """Refuse an async main or one that needs arguments (main_async, main_signature)."""
    if isinstance(main, types.FunctionType):
        # The common case, without importing inspect: read the code object.
        code = main.__code__
        if code.co_flags & (ASYNC_FLAGS):
            raise _async_main()
        required = code.co_argcount - len(main.__defaults__ or ())
        kw_required = code.co_kwonlyargcount - len(main.__kwdefaults__ or {})
        if required <= 0 and kw_required <= 0:
            return
    import inspect

    if inspect.iscoroutinefunction(main) or inspect.isasyncgenfunction(main):
        raise _async_main()
    try:
        signature = inspect.signature(main)
    except (TypeError, ValueError):
        return
    try:
        signature.bind()
    except TypeError:
        raise Report(
            "main_signature",
            f"main{signature} needs arguments, but it is called with none; define `def main():`.",
        ) from None


def _async_main() -> Report:
    return Report(
        "main_async",
        "main() is `async def`; define it with `def` and call asyncio.run(...) "
        "inside it if you need a coroutine.",
    )


def _run(source: str) -> dict[str, Any]:
    main = _load_main(source)
    try:
        value = main()
    except BaseException as exc:
        raise _exception_report(exc, "in main()") from None
    if isinstance(value, types.GeneratorType):
        raise Report(
            "invalid_result",
            "main() returned a generator (it contains `yield`); return a list instead.",
            path="result",
            type="generator",
        )
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    result = _to_json(value)
    return {"status": "ok", "result": result}


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
        text: str = encode_basestring_ascii(value)
        return text
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if value != value or value in (math.inf, -math.inf):
            raise ValueError("NaN and Infinity are not JSON")
        return float.__repr__(value)
    if isinstance(value, dict):
        items = (f"{encode_basestring_ascii(str(k))}: {_dump(v)}" for k, v in value.items())
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
                ).payload,
                max_bytes,
            )
        fields = (
            f"{encode_basestring_ascii(key)}: {result if key == 'result' else _dump(value)}"
            for key, value in report.items()
        )
        return ("{" + ", ".join(fields) + "}").encode("ascii")
    data = _dump(report).encode("ascii")
    if len(data) > max_bytes:
        report = {key: report[key] for key in ("status", "kind", "error")}
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
        return _encode(unencodable, max_result_bytes)


def _read_request(fd: int) -> tuple[int, int, str]:
    """(cpu_seconds, max_result_bytes, script) from the control pipe, which stays
    open: the service closes it once it has measured the jail (see main)."""
    data = b""
    while (header := first_line(data)) is None:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            raise EOFError("the service sent no request")
        data += chunk
    body = data[len(header) + len(LINE_END) :]
    cpu_seconds, max_result_bytes, length = parse_request_header(header)
    while len(body) < length:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            raise EOFError("the request was cut short")
        body += chunk
    return cpu_seconds, max_result_bytes, body.decode("utf-8", "surrogatepass")


def _site_lite() -> None:
    """What site would have done that matters here: the venv's site-packages on
    sys.path (and sys.prefix), and the exit()/quit() builtins."""
    import _sitebuiltins
    import builtins

    venv = os.path.dirname(os.path.dirname(sys.executable))
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    sys.path.append(f"{venv}/lib/{version}/site-packages")
    sys.prefix = sys.exec_prefix = venv
    builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")
    builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")


def _run_reported(source: str) -> dict[str, Any]:
    """Run the script; its report whatever happens (a success or an error)."""
    try:
        return _run(source)
    except Report as failure:
        return failure.payload
    except BaseException as exc:
        return _exception_report(exc, "while checking the result").payload


def _send_report(
    result_fd: int,
    report: dict[str, Any],
    ready_usage: resource.struct_rusage,
    max_result_bytes: int,
) -> None:
    """Flush what the script printed, then write the report on the result fd."""
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
        _write_all(result_fd, report_frame(data))
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
    os.set_inheritable(result_fd, False)
    resource.setrlimit(resource.RLIMIT_SIGPENDING, (MAX_PENDING_SIGNALS, MAX_PENDING_SIGNALS))
    runner_pid = os.getpid()
    ready_usage = resource.getrusage(resource.RUSAGE_SELF)
    _write_all(result_fd, ready_line(_cpu_ms(ready_usage)))
    cpu_seconds, max_result_bytes, source = _read_request(control_fd)
    os.set_inheritable(control_fd, False)
    _limit_cpu(cpu_seconds)
    sys.argv = ["script"]
    report = _run_reported(source)
    if os.getpid() != runner_pid:
        os._exit(0)  # a forked child returned from main(): only the runner reports
    _send_report(result_fd, report, ready_usage, max_result_bytes)
    try:
        # Stay alive until the service has read the jail's cgroup figures (it
        # closes the control pipe then): they go with the jail when it exits.
        os.read(control_fd, 1)
    except OSError:
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
