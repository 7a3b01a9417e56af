"""Every refusal the service raises has a text in each language the pages speak, with the same
placeholders; a Japanese page says it in Japanese, the API keeps English and adds its code."""

import ast
import string
from pathlib import Path

import pytest

from domain.errors import ServiceError
from domain.messages import ERRORS, error_text
from tests.service.conftest import auth
from tests.service.test_pages_staff import _form, _login

ROOT = Path(__file__).resolve().parents[2]
# The classes whose first argument is a refusal's code (RecordError: its second).
CODE_ARGUMENT = {cls.__name__: 0 for cls in [ServiceError, *ServiceError.__subclasses__()]}
CODE_ARGUMENT["RecordError"] = 1


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def _raised_codes() -> set[str]:
    """The literal codes the service's code raises (a typo would be a 500 at raise time)."""
    codes = set()
    for folder in ("api", "domain", "worker"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                    continue
                position = CODE_ARGUMENT.get(node.func.id)
                if position is not None and len(node.args) > position:
                    argument = node.args[position]
                    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                        codes.add(argument.value)
    return codes


def test_every_refusal_has_each_languages_text_with_the_same_placeholders():
    for lang, texts in ERRORS.items():
        assert texts.keys() == ERRORS["en"].keys(), lang
        for code, text in texts.items():
            assert _placeholders(text) == _placeholders(ERRORS["en"][code]), (lang, code)


def test_every_code_the_service_raises_is_in_the_catalogue():
    raised = _raised_codes()
    assert {"illegal_move", "not_utf8", "missing", "role_needs"} <= raised  # the scan sees them
    assert raised <= ERRORS["en"].keys(), raised - ERRORS["en"].keys()


def test_a_records_problem_says_where_and_states_by_their_names():
    where = {"source": "ada.jsonl", "line": 2, "index": 1, "field": "answer"}
    assert error_text("en", "missing", where) == "ada.jsonl: line 2: field 'answer': missing"
    assert (
        error_text("ja", "missing", where) == "ada.jsonl: 2 行目: 項目 'answer': ありません（必須）"
    )
    move = {"ticket": "t1", "state": "published", "target": "cancelled"}
    assert error_text("ja", "illegal_move", move) == (
        "チケット t1 は「公開済み」から「取り消し済み」に移れません"
    )
    assert error_text("fr", "illegal_move", move) == (
        "ticket t1 cannot go from published to cancelled"
    )


@pytest.mark.service
def test_a_japanese_form_shows_refusals_in_japanese_and_the_api_keeps_english_with_a_code(api):
    _login(api, "requester")
    bad = b'{"question": "Q?", "answer": "A."}\n{"question": "No answer?"}\n'
    good = b'{"question": "What is the email of Ada?", "answer": "ada@example.com"}\n'
    cases = [  # (form fields, file, the Japanese text the page must show)
        ({}, bad, "ada.jsonl: 2 行目: 項目 &#39;answer&#39;: ありません（必須）"),
        ({}, b"\xe9t\xe9\n", "ada.jsonl: 1 行目: UTF-8 ではありません"),
        ({"jurisdiction": "E"}, good, "2 文字以上で入力してください"),
        ({"model": "nope"}, good, "モデル &#39;nope&#39; は登録されていません"),
    ]
    for fields, file, japanese in cases:
        response = api.post("/ui/submit?lang=ja", data=_form(api, **fields),
                            files={"records": ("ada.jsonl", file)})  # fmt: skip
        assert response.status_code == 422 and japanese in response.text, japanese
    answer = api.post("/v1/deletion-requests/upload", headers=auth(api, "requester"),
                      data={"metadata": '{"model": "tiny", "subject_id": "s", "legal_basis": '
                            '"gdpr_art17", "jurisdiction": "EU", "requester": "dpo"}'},
                      files={"records": ("ada.jsonl", bad)})  # fmt: skip
    assert answer.status_code == 422
    assert answer.json() == {
        "detail": "ada.jsonl: line 2: field 'answer': missing", "code": "missing",
        "source": "ada.jsonl", "line": 2, "index": 1, "field": "answer",
    }  # fmt: skip


def test_a_ticket_held_with_every_rule_met_shows_the_pipelines_reason_and_notes_translate():
    """A ticket is also held when production moved while it ran: every rule met, and the
    page must still say why (review: it listed no rule and hid the reason)."""
    from types import SimpleNamespace

    from api.pages.messages import MESSAGES
    from api.pages.tickets import decision_lines

    publish = {"max_leak_rate": {"direct": 0.0}, "min_utility_ratio": 0.9, "max_cost_s": 600}
    evaluation = {"policy": {"content": {"publish": publish}}, "leak_rate": {"direct": 0.0},
                  "utility": {"ratio": 1.0}, "cost": {"total_s": 10.0}}  # fmt: skip
    moved = "held for review: production moved from version 2 to 3 while this ran"
    held = SimpleNamespace(state="held", evaluation=evaluation, decision_reason=moved)
    assert decision_lines(held, "ja") == [moved]
    quiet = {**evaluation, "reproduced_before": False}
    published = SimpleNamespace(state="published", evaluation=quiet, decision_reason="note")
    assert decision_lines(published, "ja") == [MESSAGES["ja"]["nothing_reproduced"]]


def test_a_refusal_survives_a_process_boundary():
    """Pickled (a worker's exception sent to another process), a refusal comes back whole: by
    default pickle passed its English text back as its code, a KeyError."""
    import pickle

    from domain.errors import Conflict, RateLimited

    moved = pickle.loads(pickle.dumps(Conflict("illegal_move", ticket="t1", state="held",
                                               target="published")))  # fmt: skip
    assert type(moved) is Conflict and moved.code == "illegal_move"
    assert moved.text("ja") == "チケット t1 は「保留（要確認）」から「公開済み」に移れません"
    limited = pickle.loads(pickle.dumps(RateLimited(60, retry_after=7)))
    assert limited.retry_after == 7 and limited.status_code == 429
