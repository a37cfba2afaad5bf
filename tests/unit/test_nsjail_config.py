"""pyexec.nsjail_config: the isolation facts read from nsjail.cfg (the real one, and
variants of it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyexec.nsjail_config import IsolationFacts, load_isolation_facts, read_isolation_facts

NSJAIL_CFG = Path(__file__).resolve().parent.parent.parent / "nsjail.cfg"
ALL_NAMESPACES = {"net", "user", "mount", "pid", "ipc", "uts", "cgroup"}


def real_config() -> str:
    return NSJAIL_CFG.read_text(encoding="utf-8")


def test_the_real_config_has_every_namespace_and_seccomp_and_leaves_ids_to_the_service() -> None:
    """The uid and gid mapping is per jail, on nsjail's command line (jail_ids.py)."""
    facts = load_isolation_facts(str(NSJAIL_CFG))
    assert set(facts.namespaces) == ALL_NAMESPACES
    assert len(facts.namespaces) == len(ALL_NAMESPACES)
    assert facts.jail_uid is None
    assert "gidmap" not in "\n".join(line.split("#", 1)[0] for line in real_config().splitlines())
    assert facts.seccomp is True


def test_a_commented_out_namespace_is_not_counted() -> None:
    text = real_config().replace("clone_newnet: true", "# clone_newnet: true")
    assert "# clone_newnet: true" in text
    assert set(read_isolation_facts(text).namespaces) == ALL_NAMESPACES - {"net"}


def test_a_namespace_set_to_false_is_not_counted() -> None:
    text = real_config().replace("clone_newpid: true", "clone_newpid: false")
    assert "clone_newpid: false" in text
    assert "pid" not in read_isolation_facts(text).namespaces


def test_without_seccomp_lines_there_is_no_seccomp() -> None:
    lines = real_config().splitlines()
    text = "\n".join(line for line in lines if not line.startswith("seccomp_string"))
    assert read_isolation_facts(text).seccomp is False


def test_commented_out_seccomp_lines_are_no_seccomp() -> None:
    text = real_config().replace("seccomp_string:", "#seccomp_string:")
    assert read_isolation_facts(text).seccomp is False


def test_a_seccomp_policy_file_counts_as_seccomp() -> None:
    assert read_isolation_facts('seccomp_policy_file: "/etc/policy.kafel"\n').seccomp


@pytest.mark.parametrize(
    ("text", "uid"),
    [
        ('uidmap { inside_id: "65534" outside_id: "1000" count: 1 }', 1000),
        ('uidmap {\n  inside_id: "0"\n  outside_id: "100000"\n  count: 1\n}', 100000),
        ('gidmap { inside_id: "65534" outside_id: "65534" count: 1 }', None),
        ('# uidmap { inside_id: "0" outside_id: "0" count: 1 }', None),
        ("", None),
    ],
    ids=["one line", "several lines", "gidmap only", "commented out", "none"],
)
def test_the_jail_uid_is_the_uidmaps_outside_id(text: str, uid: int | None) -> None:
    assert read_isolation_facts(text).jail_uid == uid


def test_an_empty_config_states_no_isolation() -> None:
    assert read_isolation_facts("") == IsolationFacts(namespaces=(), jail_uid=None, seccomp=False)


def test_the_denylist_covers_the_counters_charged_to_host_root_and_the_newer_calls() -> None:
    text = real_config()
    for name in ("inotify_init,", "inotify_init1,", "fanotify_init,", "mq_open,", "modify_ldt,"):
        assert name in text
    # memfd_secret, statmount and listmount, by number (newer than nsjail's kafel).
    assert "SYSCALL[447], SYSCALL[457], SYSCALL[458]" in text
    assert "rlimit_msgqueue: 0\nrlimit_msgqueue_type: VALUE" in text
