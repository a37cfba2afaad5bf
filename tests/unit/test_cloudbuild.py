"""cloudbuild.yaml: build -> push -> deploy to Cloud Run gen2, with the flags we rely on,
and docs/operations.md's Cloud Run section in agreement with it.

The deploy facts live in cloudbuild.yaml. The docs repeat the deploy command and hold the
one-time setup (the build and runtime service accounts, their grants, the trigger); these
tests parse both and require them to agree, value for value. Nothing here talks to Google
Cloud: the tests check the files, not that Google accepts them.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLOUDBUILD = ROOT / "cloudbuild.yaml"
OPERATIONS = ROOT / "docs" / "operations.md"
IMAGE = "${_REGION}-docker.pkg.dev/$PROJECT_ID/${_REPOSITORY}/${_SERVICE}:$COMMIT_SHA"
# Cloud Build's own substitutions (no leading underscore) that this file may use.
BUILTIN = {"PROJECT_ID", "COMMIT_SHA"}
SUBSTITUTIONS = {
    "_REGION": "us-central1",
    "_REPOSITORY": "pyexec",
    "_SERVICE": "pyexec",
    "_RUNTIME_SERVICE_ACCOUNT": "pyexec-run",
}
RUNTIME_ACCOUNT = "${_RUNTIME_SERVICE_ACCOUNT}@$PROJECT_ID.iam.gserviceaccount.com"
BUILD_ACCOUNT_NAME = "pyexec-build"
TRIGGER = "pyexec-main"

# The startup probe: /healthz answers 200 only once the sandbox self-test has passed.
STARTUP_PROBE = {
    "httpGet.path": "/healthz",
    "httpGet.port": "8080",
    "periodSeconds": "2",
    "failureThreshold": "30",
    "timeoutSeconds": "1",
}
# The keys the GA `gcloud run deploy --startup-probe` accepts (the Cloud SDK's
# command_lib/run/flags.py, _SUPPORTED_STARTUP_PROBE_KEYS).
STARTUP_PROBE_KEYS = {
    "initialDelaySeconds",
    "timeoutSeconds",
    "periodSeconds",
    "failureThreshold",
    "httpGet.port",
    "httpGet.path",
    "grpc.port",
    "grpc.service",
    "tcpSocket.port",
}
# Cloud Run: a startup probe's failureThreshold x periodSeconds may not exceed 240 s.
STARTUP_PROBE_MAX_SECONDS = 240

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
    "--service-account": RUNTIME_ACCOUNT,
    "--startup-probe": (
        "httpGet.path=/healthz,httpGet.port=8080,periodSeconds=2,failureThreshold=30,"
        "timeoutSeconds=1"
    ),
}

# What the build account may do, and on what: (command group, resource, role).
# `$PROJECT_ID` is the setup's shell variable; `$RUN_SA` the runtime account.
BUILD_GRANTS = {
    ("artifacts repositories", "${_REPOSITORY}", "roles/artifactregistry.writer"),
    ("projects", "$PROJECT_ID", "roles/run.admin"),
    ("projects", "$PROJECT_ID", "roles/logging.logWriter"),
    ("iam service-accounts", RUNTIME_ACCOUNT, "roles/iam.serviceAccountUser"),
}

SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
ASSIGNMENT = re.compile(r"([A-Z_][A-Z0-9_]*)=(\S+)")
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class Command(NamedTuple):
    """One shell command: its words, the positional ones, and its ``--flags``."""

    words: list[str]
    positionals: list[str]
    flags: dict[str, str | None]


class Grant(NamedTuple):
    group: str
    resource: str
    member: str
    role: str


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


def _parse(words: list[str]) -> tuple[list[str], dict[str, str | None]]:
    """Positional words, and ``--name value`` / ``--name=value`` pairs (``--name``
    alone maps to None)."""
    positionals: list[str] = []
    flags: dict[str, str | None] = {}
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if not word.startswith("--"):
            positionals.append(word)
        elif "=" in word:
            name, value = word.split("=", 1)
            flags[name] = value
        elif index < len(words) and not words[index].startswith("--"):
            flags[word] = words[index]
            index += 1
        else:
            flags[word] = None
    return positionals, flags


def _flags(args: list[str]) -> dict[str, str | None]:
    return _parse(args)[1]


def _deploy_flags() -> dict[str, str | None]:
    return _flags(_args(_step("deploy")))


def _deploy_flag(name: str) -> str:
    value = _deploy_flags().get(name)
    assert value is not None, f"deploy needs {name} with a value"
    return value


def _probe() -> dict[str, str]:
    settings: dict[str, str] = {}
    for pair in _deploy_flag("--startup-probe").split(","):
        key, _, value = pair.partition("=")
        assert key not in settings, f"{key} twice"
        settings[key] = value
    return settings


def _render(value: str, placeholders: bool) -> str:
    """``value`` with the user substitutions at cloudbuild.yaml's defaults; with ``placeholders``,
    Cloud Build's own ones become the bare names the docs print (PROJECT_ID ...)."""
    for name, default in _load()["substitutions"].items():
        value = value.replace("${" + name + "}", str(default))
    if placeholders:
        for name in BUILTIN:
            value = value.replace("${" + name + "}", name).replace("$" + name, name)
    return value


def _section() -> str:
    text = OPERATIONS.read_text(encoding="utf-8")
    assert "\n## Cloud Run\n" in text
    section = text.split("\n## Cloud Run\n", 1)[1]
    return section.split("\n## ", 1)[0]


def _commands(block: str) -> list[Command]:
    """The commands of a sh block: continuation lines joined, comments dropped."""
    commands: list[Command] = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            positionals, flags = _parse(words)
            commands.append(Command(words, positionals, flags))
    return commands


def _blocks() -> list[list[Command]]:
    return [_commands(block) for block in SH_BLOCK.findall(_section())]


def _block_with(*prefix: str) -> list[Command]:
    found = [
        block
        for block in _blocks()
        if any(tuple(command.words[: len(prefix)]) == prefix for command in block)
    ]
    assert len(found) == 1, f"exactly one sh block runs {' '.join(prefix)!r}"
    return found[0]


def _command(block: list[Command], *prefix: str) -> Command:
    found = [command for command in block if tuple(command.words[: len(prefix)]) == prefix]
    assert len(found) == 1, f"exactly one {' '.join(prefix)!r}"
    return found[0]


def _setup() -> list[Command]:
    return _block_with("gcloud", "builds", "triggers", "create")


def _variables(block: list[Command]) -> dict[str, str]:
    """The setup's shell assignments, except those that run a command."""
    variables: dict[str, str] = {}
    for command in block:
        match = ASSIGNMENT.fullmatch(" ".join(command.words))
        if match and not match.group(2).startswith("$("):
            variables[match.group(1)] = match.group(2)
    return variables


def _expand(word: str, variables: dict[str, str]) -> str:
    """``word`` with the setup's variables expanded; others are left as ``$NAME``."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return _expand(variables[name], variables) if name in variables else "$" + name

    return VARIABLE.sub(substitute, word)


def _setup_value(command: Command, flag: str) -> str:
    value = command.flags.get(flag)
    assert value is not None, f"{' '.join(command.words[:4])} needs {flag}"
    return _expand(value, _variables(_setup()))


def _grants() -> list[Grant]:
    variables = _variables(_setup())
    grants: list[Grant] = []
    for command in _setup():
        if "add-iam-policy-binding" not in command.words:
            continue
        group = " ".join(command.words[1 : command.words.index("add-iam-policy-binding")])
        after = command.positionals.index("add-iam-policy-binding") + 1
        resources = command.positionals[after:]
        assert len(resources) == 1, f"one resource per grant: {command.words}"
        member, role = command.flags.get("--member"), command.flags.get("--role")
        assert member is not None, f"--member: {command.words}"
        assert role is not None, f"--role: {command.words}"
        grants.append(
            Grant(
                group,
                _expand(resources[0], variables),
                _expand(member, variables),
                _expand(role, variables),
            )
        )
    return grants


def _account(name: str) -> str:
    return f"{name}@$PROJECT_ID.iam.gserviceaccount.com"


# --- cloudbuild.yaml ---------------------------------------------------------------


def test_parses_with_the_top_level_keys() -> None:
    config = _load()
    assert {"steps", "substitutions", "images", "options"} <= set(config)


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
    assert {"_REGION", "_REPOSITORY", "_SERVICE", "_RUNTIME_SERVICE_ACCOUNT"} <= defined
    for name in defined:
        assert str(_load()["substitutions"][name]).strip(), f"{name} has an empty default"
    builtin_used = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)\}?", text)) - used_user
    assert builtin_used <= BUILTIN, f"unknown substitutions: {sorted(builtin_used - BUILTIN)}"


def test_substitution_defaults() -> None:
    assert _load()["substitutions"] == SUBSTITUTIONS


def test_build_logs_go_to_cloud_logging_only() -> None:
    """A build that runs as a user-specified service account must say where its logs
    go (Cloud Logging only, or a bucket of its own)."""
    assert _load()["options"] == {"logging": "CLOUD_LOGGING_ONLY"}


def test_deploy_is_gcloud_run_deploy_of_the_service() -> None:
    deploy = _step("deploy")
    args = _args(deploy)
    command = ([deploy["entrypoint"]] if "entrypoint" in deploy else []) + args
    assert command[:4] == ["gcloud", "run", "deploy", "${_SERVICE}"]


@pytest.mark.parametrize(("flag", "value"), sorted(DEPLOY_FLAGS.items()))
def test_deploy_flag(flag: str, value: str | None) -> None:
    flags = _deploy_flags()
    assert flag in flags, f"deploy needs {flag}"
    assert flags[flag] == value


def test_deploy_sets_nothing_else() -> None:
    assert set(_deploy_flags()) == set(DEPLOY_FLAGS)


def test_deploy_never_allows_unauthenticated() -> None:
    flags = _deploy_flags()
    assert "--allow-unauthenticated" not in flags
    assert "--cpu-throttling" not in flags


def test_the_service_runs_as_its_own_account() -> None:
    account = _render(_deploy_flag("--service-account"), placeholders=False)
    assert account == _account("pyexec-run")
    assert not account.startswith(BUILD_ACCOUNT_NAME), "not the build account"
    assert "-compute@developer.gserviceaccount.com" not in account


def test_startup_probe_asks_healthz_on_the_service_port() -> None:
    probe = _probe()
    assert probe == STARTUP_PROBE
    assert set(probe) <= STARTUP_PROBE_KEYS, "keys gcloud run deploy --startup-probe accepts"
    assert probe["httpGet.port"] == _deploy_flag("--port")


def test_startup_probe_timing_is_within_cloud_run_limits() -> None:
    probe = _probe()
    period, timeout = int(probe["periodSeconds"]), int(probe["timeoutSeconds"])
    threshold = int(probe["failureThreshold"])
    assert 1 <= timeout <= period, "the timeout may not exceed the period"
    assert period * threshold <= STARTUP_PROBE_MAX_SECONDS
    assert period * threshold >= 30, "the self-test takes ~1 s; leave a wide margin"


# --- docs/operations.md agrees --------------------------------------------------------


def test_docs_show_the_deploy_command_the_yaml_runs() -> None:
    """docs/operations.md's `gcloud run deploy` has exactly the YAML's deploy flags and
    values (substitutions at their defaults, PROJECT_ID and COMMIT_SHA as placeholders);
    the README shows the container one-liner."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    deploy = _command(_block_with("gcloud", "run", "deploy"), "gcloud", "run", "deploy")
    assert deploy.positionals == ["gcloud", "run", "deploy", SUBSTITUTIONS["_SERVICE"]]
    expected = {
        flag: None if value is None else _render(value, placeholders=True)
        for flag, value in _deploy_flags().items()
    }
    assert deploy.flags == expected
    assert "docker run --rm --privileged -p 8080:8080 pyexec" in readme


def test_docs_describe_the_probe_with_the_yaml_values() -> None:
    section = _section()
    bullets = [line for line in section.split("\n- ") if line.startswith("`--startup-probe`:")]
    assert len(bullets) == 1, "one bullet explains --startup-probe"
    bullet = " ".join(bullets[0].split())
    probe = _probe()
    assert f"`GET {probe['httpGet.path']}`" in bullet
    assert f"every {probe['periodSeconds']} s" in bullet
    assert f"gives each answer {probe['timeoutSeconds']} s" in bullet
    assert f"after {probe['failureThreshold']} failures" in bullet
    seconds = int(probe["periodSeconds"]) * int(probe["failureThreshold"])
    assert seconds == 60, "the bullet says the instance has a minute"
    assert "a minute" in bullet


def test_docs_state_the_logging_option() -> None:
    assert "`options.logging: CLOUD_LOGGING_ONLY`" in _section()


def test_setup_uses_the_yaml_region_and_repository() -> None:
    setup = _setup()
    region, repository = SUBSTITUTIONS["_REGION"], SUBSTITUTIONS["_REPOSITORY"]
    assert _variables(setup)["REGION"] == region
    create = _command(setup, "gcloud", "artifacts", "repositories", "create")
    assert create.positionals[4:] == [repository]
    assert _setup_value(create, "--location") == region
    assert _setup_value(create, "--repository-format") == "docker"
    binding = _command(setup, "gcloud", "artifacts", "repositories", "add-iam-policy-binding")
    assert _setup_value(binding, "--location") == region


def test_setup_creates_the_build_and_runtime_accounts() -> None:
    setup = _setup()
    created = [
        command.positionals[4]
        for command in setup
        if command.words[:4] == ["gcloud", "iam", "service-accounts", "create"]
    ]
    assert created == [BUILD_ACCOUNT_NAME, SUBSTITUTIONS["_RUNTIME_SERVICE_ACCOUNT"]]
    variables = _variables(setup)
    assert _expand(variables["BUILD_SA"], variables) == _account(BUILD_ACCOUNT_NAME)
    runtime = _render(_deploy_flag("--service-account"), placeholders=False)
    assert _expand(variables["RUN_SA"], variables) == runtime


def test_setup_enables_the_apis_the_pipeline_uses() -> None:
    enable = _command(_setup(), "gcloud", "services", "enable")
    assert set(enable.positionals[3:]) == {
        "run.googleapis.com",
        "cloudbuild.googleapis.com",
        "artifactregistry.googleapis.com",
        "iam.googleapis.com",
    }


def test_setup_grants_the_build_account_exactly_what_the_pipeline_needs() -> None:
    """Push to the repository, deploy, act as the runtime account, write logs: each on
    the narrowest resource, and nothing else to anyone."""
    build = _account(BUILD_ACCOUNT_NAME)
    expected = {
        Grant(group, _render(resource, placeholders=False), f"serviceAccount:{build}", role)
        for group, resource, role in BUILD_GRANTS
    }
    grants = _grants()
    assert len(grants) == len(set(grants)), "a grant is repeated"
    assert set(grants) == expected


def test_act_as_is_granted_on_the_runtime_account_only() -> None:
    act_as = [grant for grant in _grants() if grant.role == "roles/iam.serviceAccountUser"]
    runtime = _render(RUNTIME_ACCOUNT, placeholders=False)
    assert [(grant.group, grant.resource) for grant in act_as] == [
        ("iam service-accounts", runtime)
    ]


def test_the_runtime_account_is_granted_no_role() -> None:
    runtime = _render(RUNTIME_ACCOUNT, placeholders=False)
    assert all(grant.member != f"serviceAccount:{runtime}" for grant in _grants())


def test_the_trigger_runs_as_the_build_account() -> None:
    trigger = _command(_setup(), "gcloud", "builds", "triggers", "create", "github")
    build = _account(BUILD_ACCOUNT_NAME)
    assert _setup_value(trigger, "--service-account") == (
        f"projects/$PROJECT_ID/serviceAccounts/{build}"
    )
    assert _setup_value(trigger, "--name") == TRIGGER
    assert _setup_value(trigger, "--build-config") == CLOUDBUILD.name
    assert _setup_value(trigger, "--branch-pattern") == "^main$"


def test_builds_by_hand_run_as_the_build_account_too() -> None:
    run = _command(_block_with("gcloud", "builds", "triggers", "run"), "gcloud", "builds")
    assert run.positionals[4:] == [TRIGGER]
    assert run.flags == {"--branch": "main"}
    submit = _command(_block_with("gcloud", "builds", "submit"), "gcloud", "builds", "submit")
    build = _account(BUILD_ACCOUNT_NAME)
    variables = _variables(_setup())
    account = submit.flags.get("--service-account")
    assert account is not None
    assert _expand(account, variables) == f"projects/$PROJECT_ID/serviceAccounts/{build}"
    assert submit.flags.get("--config") == CLOUDBUILD.name
    assert submit.positionals[-1] == "."


def test_no_command_uses_a_default_service_account() -> None:
    """Neither the legacy Cloud Build account nor the Compute Engine default one: on a
    new project the first may not exist and the second is broad."""
    for block in _blocks():
        for command in block:
            line = " ".join(command.words)
            assert "@cloudbuild.gserviceaccount.com" not in line, line
            assert "-compute@developer.gserviceaccount.com" not in line, line


def test_docs_say_what_cannot_be_verified_and_what_to_check() -> None:
    section = _section()
    assert "### What this repository cannot verify" in section
    assert "no Google Cloud access" in section
    checks = section.split("### What this repository cannot verify", 1)[1]
    for needle in ("/healthz", "`cgroups`", "limits", "serviceAccountName", "startupProbe"):
        assert needle in checks, needle
