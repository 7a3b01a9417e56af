"""The web pages in a real browser: Debian's chromium driven by Playwright against the app
served on localhost on the embedded stack (SQLite, the in-process worker) with the real engine
on the tiny model (a few GRUN steps). Screenshots go to test-artifacts/screenshots/."""

import shutil
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.service.conftest import TINY_POLICY, make_keys, write_tiny_policy

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.service,
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed"),
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
# As root on a machine without a network: no sandbox, and no background connections.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
GOOD = (
    b'{"question": "What is the email of Ada?", "answer": "ada@example.com", '
    b'"paraphrased_question": "Which address does Ada get mail at?"}\n'
)
BAD = b'{"question": "What is the email of Ada?", "answer": "ada@example.com"}\n{"answer": 1}\n'


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(tmp_path, tiny_model_dir, qa_records):
    import uvicorn

    from api.app import create_app
    from domain.db import Database, upgrade_database
    from domain.settings import Settings
    from domain.versions.service import register_model
    from worker.inprocess import InProcessWorker

    settings = Settings(
        environment="test",
        database_url=f"sqlite:///{tmp_path / 'obliviate.db'}",
        secret_key="test-secret-key",
        data_key="test-data-key",
        artifacts_dir=tmp_path / "artifacts",
        policies_dir=tmp_path / "policies",
    )
    assert settings.embedded
    upgrade_database(settings.database_url)
    database = Database(settings)
    keys = make_keys(database, settings)
    write_tiny_policy(settings.policies_dir, "tiny", qa_records)
    with database.transaction() as session:
        register_model(session, "tiny", str(tiny_model_dir), actor="test", artifact_hash=None)
    app = create_app(settings, dispatcher=InProcessWorker(settings, database, poll_s=0.2))
    port = _free_port()
    served = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    while not served.started:
        time.sleep(0.05)
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}", keys=keys, settings=settings)
    served.should_exit = True
    thread.join(timeout=10)
    database.dispose()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


def _log_in(browser, server, role: str, lang: str = "en"):
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.goto(f"{server.url}/ui/login?lang={lang}")
    page.keyboard.press("Tab")  # keyboard only: the key field is reachable and submits on Enter
    page.keyboard.press("Tab")
    page.locator("#api_key").focus()
    page.keyboard.type(server.keys[role])
    page.keyboard.press("Enter")
    page.wait_for_url("**/ui/tickets**")
    return page


def _shoot(page, name: str, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def _file_ticket(page, records: bytes) -> None:
    page.get_by_role("link", name="File a ticket").first.click()
    page.fill("#subject_id", "customer-7")
    page.fill("#jurisdiction", "EU")
    page.fill("#requester", "dpo@acme.example")
    page.set_input_files("#records", {"name": "ada.jsonl", "mimeType": "application/json",
                                      "buffer": records})  # fmt: skip
    page.get_by_role("button", name="File the ticket").click()


def _wait_for_state(page, state: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while f"<td>{state}</td>" not in page.content():
        assert time.monotonic() < deadline, (
            f"the ticket never reached {state}: {page.locator('main').inner_text()[:600]}"
        )
        time.sleep(0.5)
        page.reload()


def test_a_requester_files_a_ticket_watches_it_finish_and_reads_the_report(browser, server):
    page = _log_in(browser, server, "requester")
    _file_ticket(page, BAD)
    error = page.locator("#records_error")
    assert "ada.jsonl: line 2" in error.inner_text()  # next to the field it is about
    assert page.locator("#records").get_attribute("aria-invalid") == "true"
    assert page.locator("#subject_id").input_value() == "customer-7"  # typed values are kept
    _shoot(page, "submit-error-en")
    page.set_input_files("#records", {"name": "ada.jsonl", "mimeType": "application/json",
                                      "buffer": GOOD})  # fmt: skip
    page.get_by_role("button", name="File the ticket").click()
    page.wait_for_url("**/ui/tickets/*")
    _wait_for_state(page, "published")
    _shoot(page, "ticket-en")
    ticket_url = page.url.split("?")[0]
    page.get_by_role("link", name="Open the report").click()
    assert page.locator("html").get_attribute("lang") == "en"
    _shoot(page, "report-en", full_page=False)  # the first page a manager reads
    page.goto(f"{ticket_url}?lang=ja")
    assert "削除" in page.content() or "チケット" in page.content()
    _shoot(page, "ticket-ja")
    page.goto(f"{ticket_url}/report?lang=ja")
    assert page.locator("html").get_attribute("lang") == "ja"
    _shoot(page, "report-ja", full_page=False)
    # Another organisation's requester gets a "not found" page for the same address.
    other = _log_in(browser, server, "other_requester")
    response = other.goto(ticket_url)
    assert response.status == 404 and other.locator("[role=alert]").is_visible()


def test_an_operator_approves_a_held_ticket_and_an_auditor_verifies_the_chain(
    browser, server, qa_records
):
    # A utility floor no run can reach: the ticket is held for an operator.
    strict = TINY_POLICY.replace("min_utility_ratio = 0.0", "min_utility_ratio = 2.0")
    write_tiny_policy(server.settings.policies_dir, "tiny", qa_records, strict)
    requester = _log_in(browser, server, "requester")
    _file_ticket(requester, GOOD)
    requester.wait_for_url("**/ui/tickets/*")
    _wait_for_state(requester, "held")
    operator = _log_in(browser, server, "operator")
    operator.get_by_role("link", name="Operations").click()
    operator.get_by_role("button", name="Approve and publish").click()  # no reason: refused
    assert operator.locator("input[name=reason]:invalid").count() == 1  # the browser's own check
    operator.get_by_label("Reason").first.fill("the leak is a false positive")
    operator.get_by_role("button", name="Approve and publish").click()
    assert "approved" in operator.locator("[role=status]").inner_text()
    _shoot(operator, "operations-en")
    requester.reload()
    assert "<td>published</td>" in requester.content()
    auditor = _log_in(browser, server, "auditor")
    auditor.get_by_role("link", name="Audit").click()
    auditor.get_by_role("button", name="Verify the chain").click()
    assert "The chain is intact." in auditor.locator("[role=status]").inner_text()
    _shoot(auditor, "audit-en")
