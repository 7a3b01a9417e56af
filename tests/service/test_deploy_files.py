"""docker-compose.yml and the Dockerfile agree with the code: every OBLIVIATE_* variable they
set is a real setting, the commands exist, and the image copies every package it installs."""

import re
import tomllib
from pathlib import Path

import yaml
from sqlalchemy import make_url
from typer.main import get_command

from cli.main import app
from domain.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_api_worker_postgres_and_redis():
    services = _compose()["services"]
    assert {"api", "worker", "postgres", "redis"} <= set(services)
    assert services["api"]["command"][:2] == ["obliviate", "serve"]
    assert services["worker"]["command"][:2] == ["obliviate", "worker"]
    assert services["migrate"]["command"] == ["obliviate", "migrate", "--grant-to", "obliviate_app"]
    # One scheduler finds lost jobs; workers embed no beat (each replica ran one before).
    assert services["scheduler"]["command"] == ["obliviate", "scheduler"]
    assert "deploy" not in services["scheduler"] and "--beat" not in services["worker"]["command"]


def test_compose_sets_only_real_settings_and_no_default_secrets():
    environment = _compose()["services"]["api"]["environment"]
    fields = {f"OBLIVIATE_{name.upper()}" for name in Settings.model_fields}
    assert set(environment) <= fields
    assert environment["OBLIVIATE_ENVIRONMENT"] == "production"  # refuses dev secrets
    for secret in ("OBLIVIATE_SECRET_KEY", "OBLIVIATE_DATA_KEY"):
        assert environment[secret].startswith("${") and ":?" in environment[secret]


def test_compose_and_dockerfile_commands_exist_in_the_cli():
    commands = set(get_command(app).commands)
    dockerfile = (ROOT / "Dockerfile").read_text()
    cmd = re.search(r'^CMD \["obliviate", "(\w+)"', dockerfile, re.M).group(1)
    assert {"serve", "worker", "scheduler", "migrate", cmd} <= commands


def test_dockerfile_copies_every_installed_package():
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) \1$", dockerfile, re.M))
    # Every package pyproject installs (a new top-level package must be copied too).
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    included = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    assert copied == {pattern.rstrip("*") for pattern in included}
    env_names = set(re.findall(r"(OBLIVIATE_\w+)=", dockerfile))
    assert env_names <= {f"OBLIVIATE_{name.upper()}" for name in Settings.model_fields} | {
        "OBLIVIATE_HOME"
    }


def test_the_app_connects_as_its_own_role_and_only_migrate_as_the_owner():
    services = _compose()["services"]

    def user(service: str) -> str:
        url = services[service]["environment"]["OBLIVIATE_DATABASE_URL"]
        return make_url(url).username

    assert {user(s) for s in ("api", "worker", "scheduler")} == {"obliviate_app"}
    assert user("migrate") == services["postgres"]["environment"]["POSTGRES_USER"]
    init = [v for v in services["postgres"]["volumes"] if "docker-entrypoint-initdb.d" in v]
    script = ROOT / init[0].split(":")[0]
    assert "CREATE ROLE obliviate_app" in script.read_text() and "NOSUPERUSER" in script.read_text()


def test_the_lock_pins_every_dependency_but_torch():
    """CI, setup.sh and the image install with `-c requirements.lock`: a dependency added to
    pyproject without refreshing the lock (scripts/lock.sh) would float."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["dev"]
    names = {re.split(r"[<>=\[;]", spec)[0].strip().lower().replace("_", "-") for spec in wanted}
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    pinned = {line.split("==")[0].lower().replace("_", "-") for line in lines if "==" in line}
    assert names - {"torch"} <= pinned
    assert "torch" not in pinned  # its build (CPU or CUDA) is chosen per machine
