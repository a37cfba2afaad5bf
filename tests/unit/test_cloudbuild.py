"""cloudbuild.yaml: build -> push -> deploy to Cloud Run gen2, with the flags we rely on."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLOUDBUILD = ROOT / "cloudbuild.yaml"
IMAGE = "${_REGION}-docker.pkg.dev/$PROJECT_ID/${_REPOSITORY}/${_SERVICE}:$COMMIT_SHA"
# Cloud Build's own substitutions (no leading underscore) that this file may use.
BUILTIN = {"PROJECT_ID", "COMMIT_SHA"}

# deploy flag -> the value it must have (None: a flag without a value)
DEPLOY_FLAGS: dict[str, str | None] = {
    "--execution-environment": "gen2",
    "--cpu": "2",
    "--memory": "3Gi",
    "--concurrency": "8",
    "--no-cpu-throttling": None,
    "--no-allow-unauthenticated": None,
    "--port": "8080",
    "--image": IMAGE,
    "--region": "${_REGION}",
    "--set-env-vars": "GOOGLE_CLOUD_PROJECT=$PROJECT_ID",
}


def _load() -> dict[str, Any]:
    config = yaml.safe_load(CLOUDBUILD.read_text(encoding="utf-8"))
    assert isinstance(config, dict)
    return config


def _steps() -> list[dict[str, Any]]:
    steps = _load()["steps"]
    assert isinstance(steps, list)
    return steps


def _step(step_id: str) -> dict[str, Any]:
    matches = [step for step in _steps() if step.get("id") == step_id]
    assert len(matches) == 1, f"exactly one step with id {step_id!r}"
    return matches[0]


def _args(step: dict[str, Any]) -> list[str]:
    args = step.get("args", [])
    assert isinstance(args, list)
    assert all(isinstance(arg, str) for arg in args), "quote numbers: args must be strings"
    return args


def _flags(args: list[str]) -> dict[str, str | None]:
    """``--name value`` and ``--name=value`` pairs; ``--name`` alone maps to None."""
    flags: dict[str, str | None] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if not arg.startswith("--"):
            continue
        if "=" in arg:
            name, value = arg.split("=", 1)
            flags[name] = value
        elif index < len(args) and not args[index].startswith("--"):
            flags[arg] = args[index]
            index += 1
        else:
            flags[arg] = None
    return flags


def test_parses_with_the_top_level_keys() -> None:
    config = _load()
    assert {"steps", "substitutions", "images"} <= set(config)


def test_steps_are_build_push_deploy_in_order() -> None:
    assert [step.get("id") for step in _steps()] == ["build", "push", "deploy"]


def test_build_and_push_the_commit_tagged_image() -> None:
    build = _args(_step("build"))
    assert build[0] == "build"
    assert _flags(build).get("--tag") == IMAGE
    assert build[-1] == ".", "the build context is the repository"
    assert _args(_step("push")) == ["push", IMAGE]
    assert _load()["images"] == [IMAGE]


def test_every_substitution_used_is_defined() -> None:
    text = CLOUDBUILD.read_text(encoding="utf-8")
    defined = set(_load()["substitutions"])
    assert all(name.startswith("_") for name in defined), "user substitutions start with _"
    used_user = set(re.findall(r"\$\{(_[A-Z0-9_]+)\}", text))
    used_user |= set(re.findall(r"\$(_[A-Z0-9_]+)", text))
    assert used_user, "the file uses ${_REGION} etc."
    assert used_user <= defined, f"undefined: {sorted(used_user - defined)}"
    assert {"_REGION", "_REPOSITORY", "_SERVICE"} <= defined
    for name in defined:
        assert str(_load()["substitutions"][name]).strip(), f"{name} has an empty default"
    builtin_used = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)\}?", text)) - used_user
    assert builtin_used <= BUILTIN, f"unknown substitutions: {sorted(builtin_used - BUILTIN)}"


def test_deploy_is_gcloud_run_deploy_of_the_service() -> None:
    deploy = _step("deploy")
    args = _args(deploy)
    command = ([deploy["entrypoint"]] if "entrypoint" in deploy else []) + args
    assert command[:4] == ["gcloud", "run", "deploy", "${_SERVICE}"]


@pytest.mark.parametrize(("flag", "value"), sorted(DEPLOY_FLAGS.items()))
def test_deploy_flag(flag: str, value: str | None) -> None:
    flags = _flags(_args(_step("deploy")))
    assert flag in flags, f"deploy needs {flag}"
    assert flags[flag] == value


def test_deploy_never_allows_unauthenticated() -> None:
    flags = _flags(_args(_step("deploy")))
    assert "--allow-unauthenticated" not in flags
    assert "--cpu-throttling" not in flags


def test_docs_show_the_deploy_command_the_yaml_runs() -> None:
    """docs/operations.md's `gcloud run deploy` has exactly the YAML's deploy flags and
    values; the README shows the container one-liner."""
    operations = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = operations.split("gcloud run deploy pyexec", 1)[1].split("```", 1)[0]
    words = block.replace("\\\n", " ").split()
    for flag, value in DEPLOY_FLAGS.items():
        assert flag in words, flag
        if value is not None and flag not in ("--image", "--region", "--set-env-vars"):
            assert words[words.index(flag) + 1] == value, flag
    assert "docker run --rm --privileged -p 8080:8080 pyexec" in readme
