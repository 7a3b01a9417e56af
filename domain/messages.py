"""What the service says when it refuses something, in every language the web pages speak.

A refusal is raised with a code from this catalogue and the values its text needs
(`domain.errors.ServiceError`); the API answers the English text as `detail` and the code as
`code` (for programs), the web pages show the reader's language. Found in use (issue 16): a
Japanese page showed every refusal in English. A test keeps each language's codes and
placeholders equal to English's.
"""

from __future__ import annotations

from collections.abc import Mapping

# A ticket's states as people read them (English: the API's own names).
JA_STATES = {
    "received": "受付済み",
    "assessing": "評価中",
    "queued": "待機中",
    "unlearning": "忘却処理中",
    "evaluating": "検証中",
    "held": "保留（要確認）",
    "approved": "承認済み",
    "published": "公開済み",
    "rejected": "却下",
    "cancelled": "取り消し済み",
    "failed": "失敗",
    "undone": "取り消し（ロールバック）",
}
STATE_NAMES = {"en": {name: name for name in JA_STATES}, "ja": JA_STATES}
STATE_PARAMS = ("state", "target")  # parameters that hold a ticket state, shown by its name
LIST_SEPARATOR = {"en": ", ", "ja": "、"}  # a parameter that is a list (e.g. roles)

ERRORS: dict[str, dict[str, str]] = {
    "en": {
        # A records file or inline records (prefixed with where: file, line or record, field).
        "too_many_records": "{count} records; at most {limit} per ticket",
        "unknown_field": "unknown field",
        "missing": "missing",
        "empty": "is empty",
        "not_string": "must be a string, got {got}",
        "not_list": "must be a list of strings, got {got}",
        "not_strings": "must hold only strings, found a {got}",
        "not_object": "must be a JSON object, got {got}",
        "not_qa_or_text": "needs 'question' and 'answer' (QA) or 'text'",
        "no_records": "holds no records",
        "not_utf8": "not UTF-8 (byte {byte}); save the file as UTF-8",
        "not_json": "not JSON ({reason})",
        "file_too_large": "over {limit} bytes",
        "invalid_metadata": "invalid metadata or records",
        # Tickets.
        "idempotency_mismatch": "this Idempotency-Key was used with a different request body",
        "options_admin_only": "only an admin may choose the method or adapter of a ticket",
        "ticket_not_found": "no deletion request {ticket}",
        "too_late_to_cancel": "ticket {ticket} is {state}: too late to cancel",
        "illegal_move": "ticket {ticket} cannot go from {state} to {target}",
        "ticket_closed": "ticket {ticket} is closed",
        "already_extended": "ticket {ticket} was already extended once",
        "not_extendable": "the {basis} deadline cannot be extended",
        "data_key_destroyed": "ticket {ticket} is closed: its data key was destroyed",
        # Models and versions.
        "bad_model_spec": (
            "model spec {spec!r} is neither a built-in ({builtins}), an existing local folder "
            "or .gguf file, nor a Hugging Face hub id (owner/name)"
        ),
        "unknown_model": "unknown model {name!r}; an admin registers it with POST /v1/models",
        "no_such_version": "model {name!r} has no version {number}",
        "model_registered": "model {name!r} is already registered",
        "built_on_other_version": (
            "version {number} of {name!r} was built on another version than the one serving "
            "now ({serving}); re-run the ticket (POST /v1/deletion-requests/{{id}}/rerun) to "
            "unlearn its data again on the serving version"
        ),
        "no_candidate_version": "this ticket has no candidate version to publish",
        "no_parent": "version {number} of {name!r} has no parent to roll back to",
        "not_earlier": "can only roll back to an earlier published version, not {number}",
        "version_unloadable": "version {number} of {name!r} cannot be loaded: {reason}",
        # Keys, roles and limits.
        "unknown_role": "unknown role {role!r}; choose one of: {roles}",
        "missing_key": "missing API key: send it in the X-API-Key header",
        "invalid_key": "invalid or revoked API key",
        "key_not_found": "no API key {key}",
        "key_revoked": "API key {key} is already revoked",
        "last_admin_key": "this is the last active admin key; create another admin key first",
        "role_needs": "role {role!r} may not do this; needs one of: {roles}",
        "role_may_not": "role {role!r} may not do this",
        "role_may_not_open": "role {role!r} may not open this page",
        "bad_csrf": "missing or wrong CSRF token",
        "rate_limited": "more than {limit} requests a minute with this key; retry later",
        # What verifying the audit chain finds (not refusals: findings about stored history).
        "rows_missing": "expected seq {expected}: rows missing",
        "link_broken": "prev_hash does not match the previous row",
        "row_edited": "content does not match its hash (row edited)",
        "chain_cut": (
            "rows up to this seq existed at {time} (checkpoint); the chain now ends at {last}"
        ),
        "history_rewritten": "hash differs from the checkpoint of {time}: history rewritten",
        "rows_deleted": "{then} rows at {time} (checkpoint), {now} now",
        "bad_checkpoint": "checkpoint line {number}: not a valid signed checkpoint",
    },
    "ja": {
        "too_many_records": (
            "記録が {count} 件あります。1 件のチケットに入れられるのは {limit} 件までです"
        ),
        "unknown_field": "使えない項目です",
        "missing": "ありません（必須）",
        "empty": "空です",
        "not_string": "文字列でなければなりません（{got} が渡されました）",
        "not_list": "文字列のリストでなければなりません（{got} が渡されました）",
        "not_strings": "文字列だけを入れてください（{got} が含まれています）",
        "not_object": "JSON オブジェクトでなければなりません（{got} が渡されました）",
        "not_qa_or_text": "'question' と 'answer'（QA）か 'text' が必要です",
        "no_records": "記録が 1 件もありません",
        "not_utf8": "UTF-8 ではありません（バイト {byte}）。UTF-8 で保存し直してください",
        "not_json": "JSON として読めません（{reason}）",
        "file_too_large": "{limit} バイトを超えています",
        "invalid_metadata": "入力項目か記録に誤りがあります",
        "idempotency_mismatch": "この Idempotency-Key は別の内容の依頼ですでに使われています",
        "options_admin_only": "方式やアダプターを指定できるのは管理者だけです",
        "ticket_not_found": "削除依頼 {ticket} は見つかりません",
        "too_late_to_cancel": "チケット {ticket} は「{state}」のため、もう取り消せません",
        "illegal_move": "チケット {ticket} は「{state}」から「{target}」に移れません",
        "ticket_closed": "チケット {ticket} は完了しています",
        "already_extended": "チケット {ticket} の期限はすでに 1 回延長されています",
        "not_extendable": "{basis} の期限は延長できません",
        "data_key_destroyed": "チケット {ticket} は完了し、データの鍵は破棄されています",
        "bad_model_spec": (
            "モデル指定 {spec!r} は組み込みモデル（{builtins}）、既存のローカルフォルダーか "
            ".gguf ファイル、Hugging Face の ID（owner/name）のいずれでもありません"
        ),
        "unknown_model": (
            "モデル {name!r} は登録されていません。管理者が POST /v1/models で登録します"
        ),
        "no_such_version": "モデル {name!r} にバージョン {number} はありません",
        "model_registered": "モデル {name!r} はすでに登録されています",
        "built_on_other_version": (
            "{name!r} のバージョン {number} は、いま公開中のバージョン（{serving}）とは"
            "別のバージョンから作られました。公開中のバージョンで忘却し直すには、チケットを再実行してください"
            "（POST /v1/deletion-requests/{{id}}/rerun）"
        ),
        "no_candidate_version": "このチケットには公開できる候補バージョンがありません",
        "no_parent": "{name!r} のバージョン {number} には戻す先の親バージョンがありません",
        "not_earlier": "戻せるのは以前に公開したバージョンだけです（{number} は戻せません）",
        "version_unloadable": "{name!r} のバージョン {number} を読み込めません: {reason}",
        "unknown_role": "ロール {role!r} はありません。{roles} から選んでください",
        "missing_key": "API キーがありません。X-API-Key ヘッダーで送ってください",
        "invalid_key": "API キーが無効か、失効しています",
        "key_not_found": "API キー {key} は見つかりません",
        "key_revoked": "API キー {key} はすでに失効しています",
        "last_admin_key": "最後の有効な管理者キーです。先に別の管理者キーを作ってください",
        "role_needs": "ロール {role!r} にはこの操作の権限がありません（必要なロール: {roles}）",
        "role_may_not": "ロール {role!r} にはこの操作の権限がありません",
        "role_may_not_open": "ロール {role!r} はこのページを開けません",
        "bad_csrf": "フォームの CSRF トークンがないか、正しくありません",
        "rate_limited": (
            "このキーでの依頼が 1 分あたり {limit} 件を超えました。しばらくして再試行してください"
        ),
        "rows_missing": "連番 {expected} があるはずです: 行が欠けています",
        "link_broken": "prev_hash が直前の行と一致しません",
        "row_edited": "内容がハッシュと一致しません（行が書き換えられています）",
        "chain_cut": (
            "{time} のチェックポイントではこの連番まで行がありました。"
            "いまの最後の連番は {last} です"
        ),
        "history_rewritten": (
            "{time} のチェックポイントとハッシュが違います: 履歴が書き換えられています"
        ),
        "rows_deleted": "{time} のチェックポイントでは {then} 行、いまは {now} 行です",
        "bad_checkpoint": (
            "チェックポイントの {number} 行目: 正しく署名されたチェックポイントではありません"
        ),
    },
}

# Where in the records a problem is: the file or source, then its line or record, then field.
WHERE = {
    "en": {"line": "line {}", "record": "record {}", "field": "field {!r}"},
    "ja": {"line": "{} 行目", "record": "記録 {}", "field": "項目 {!r}"},
}


def error_text(lang: str, code: str, params: Mapping[str, object]) -> str:
    """The refusal `code` in `lang` (English where `lang` is unknown), filled from `params`;
    a problem in records (`source` given) first says where it is."""
    lang = lang if lang in ERRORS else "en"
    shown = dict(params)
    for name in STATE_PARAMS:
        if name in shown:
            shown[name] = STATE_NAMES[lang].get(str(shown[name]), shown[name])
    for name, value in shown.items():
        if isinstance(value, list | tuple):
            shown[name] = LIST_SEPARATOR[lang].join(map(str, value))
    text = ERRORS[lang][code].format(**shown)
    if "source" not in params:
        return text
    where, parts = WHERE[lang], [str(params["source"])]
    if params.get("line") is not None:
        parts.append(where["line"].format(params["line"]))
    elif params.get("index") is not None:
        parts.append(where["record"].format(params["index"]))
    if params.get("field") is not None:
        parts.append(where["field"].format(params["field"]))
    return ": ".join([*parts, text])
