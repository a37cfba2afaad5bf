"""The isolation facts the service reports at start-up, read from ``nsjail.cfg`` itself.

nsjail.cfg is the single source of truth for the jail; the service only reads the
few facts it logs (namespaces, the outside uid, whether a seccomp policy applies)
instead of restating them. The file is nsjail's text-proto format; these are
top-level fields, so a line-based reading is enough.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_NAMESPACE = re.compile(r"^\s*clone_new(\w+)\s*:\s*true\b", re.MULTILINE)
_UIDMAP_OUTSIDE = re.compile(r"^\s*uidmap\s*\{[^}]*\boutside_id\s*:\s*\"(\d+)\"", re.MULTILINE)
_SECCOMP = re.compile(r"^\s*seccomp_(?:string|policy_file)\s*:", re.MULTILINE)
# config.proto's names for the namespaces, as people call them.
_NAMESPACE_NAMES = {"ns": "mount"}


@dataclass(frozen=True)
class IsolationFacts:
    """What nsjail.cfg says about the jail, in the words the start-up log uses."""

    namespaces: tuple[str, ...]
    jail_uid: int | None
    seccomp: bool


def read_isolation_facts(text: str) -> IsolationFacts:
    """The facts from the text of an nsjail config."""
    stripped = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    namespaces = tuple(_NAMESPACE_NAMES.get(name, name) for name in _NAMESPACE.findall(stripped))
    uid = _UIDMAP_OUTSIDE.search(stripped)
    return IsolationFacts(
        namespaces=namespaces,
        jail_uid=int(uid.group(1)) if uid else None,
        seccomp=bool(_SECCOMP.search(stripped)),
    )


def load_isolation_facts(path: str) -> IsolationFacts:
    """The facts from the nsjail config at ``path``."""
    return read_isolation_facts(Path(path).read_text(encoding="utf-8"))
