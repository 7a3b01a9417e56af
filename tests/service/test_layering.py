"""The package layers: `domain` at the bottom (torch-free), the API process free of torch."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.service.conftest import ticket_body

ROOT = Path(__file__).resolve().parents[2]


PACKAGES = ("api", "worker", "domain", "models", "migrations", "cli", "bench")


def _imports(package: str) -> dict[str, set[str]]:
    """{imported top-level module: files of `package` importing it}, function-level included."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_the_domain_imports_neither_the_api_nor_the_worker_nor_torch():
    imported = _imports("domain")
    for banned in ("api", "worker", "cli", "bench", "torch", "transformers"):
        assert banned not in imported, (banned, imported.get(banned))


def test_the_top_level_packages_import_each_other_without_a_cycle():
    # Before: api/ and worker/ imported each other (worker/pipeline.py used 9 api modules; the
    # API imported the worker inside functions to dodge the cycle).
    graph = {pkg: set(_imports(pkg)) & set(PACKAGES) - {pkg} for pkg in PACKAGES}
    assert "api" not in graph["worker"] and "worker" not in graph["domain"]
    done, active = set(), []

    def visit(pkg: str) -> None:
        assert pkg not in active, f"import cycle: {' -> '.join([*active, pkg])}"
        if pkg not in done:
            active.append(pkg)
            for other in sorted(graph[pkg]):
                visit(other)
            active.pop()
            done.add(pkg)

    for pkg in PACKAGES:
        visit(pkg)


@pytest.mark.service
def test_filing_a_ticket_does_not_load_torch_into_the_api_process(
    pg_url, database, tmp_path, tiny_model_dir
):
    # `database`: the subprocess writes to the session database; the fixture empties it after
    # (before, the next test file found model 'tiny' already registered).
    # Before: the first POST imported torch, transformers and peft (RSS 73 -> 470 MB, 7.8 s).
    script = f"""
import sys
from fastapi.testclient import TestClient
from api.app import create_app
from domain.db import Database
from domain.versions.service import register_model
from domain.settings import Settings
from tests.service.conftest import make_keys
settings = Settings(environment="test", database_url={pg_url!r}, secret_key="s", data_key="d",
                    broker_url="redis://127.0.0.1:1/0", artifacts_dir={str(tmp_path)!r})
database = Database(settings)
keys = make_keys(database, settings)
with database.transaction() as session:
    register_model(session, "tiny", {str(tiny_model_dir)!r}, actor="test", artifact_hash=None)
with TestClient(create_app(settings)) as client:
    response = client.post("/v1/deletion-requests", json={ticket_body()!r},
                           headers={{"X-API-Key": keys["requester"]}})
    assert response.status_code == 201, response.text
print(sorted(m for m in ("torch", "transformers", "peft") if m in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_the_scheduler_and_the_pipeline_load_without_the_engine():
    # Before: worker.pipeline imported the training loop (torch) for two small classes, so
    # `obliviate scheduler` (a sweep loop) started the whole engine.
    script = (
        "import sys\n"
        "import domain.audit.checkpoints, worker.celery_app, worker.inprocess, worker.pipeline\n"
        "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
