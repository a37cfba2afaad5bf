"""Settings: defaults from DESIGN.md, and a clear start-up error for each bad value."""

from __future__ import annotations

import pytest

from pyexec.settings import Settings, SettingsError, load_settings


def test_defaults_are_the_documented_ones() -> None:
    settings = load_settings({})
    assert settings.timeout_seconds == 10
    assert settings.max_script_chars == 100_000
    assert settings.memory_mb == 256
    assert settings.file_size_mb == 10
    assert settings.max_pids == 128
    assert settings.cpus == 1
    assert settings.max_body_bytes == 256 * 1024
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


def test_settings_are_immutable() -> None:
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.timeout_seconds = 1  # type: ignore[misc]
