"""Every string of the web pages, in English and Japanese (one catalogue; a test keeps the two
key sets equal)."""

from __future__ import annotations

from api.reports.messages import LANGUAGES  # one list of languages for the report and pages
from domain.messages import STATE_NAMES  # with the refusals: states appear in them

__all__ = ["LANGUAGES", "MESSAGES", "STATE_NAMES"]

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "app": "obliviate",
        "login": "Log in",
        "logout": "Log out",
        "api_key": "API key",
        "api_key_help": "The key your administrator gave you; it is kept in a session cookie.",
        "bad_key": "This key is not valid or was revoked.",
        "login_expired": "This login form has expired (or came from another site): try again.",
        "tickets": "Deletion tickets",
        "no_tickets": "No tickets yet.",
        "ticket": "Ticket",
        "model": "Model",
        "state": "State",
        "stage": "Stage",
        "progress": "Progress",
        "eta": "Time left",
        "due": "Due",
        "received": "Received",
        "reason": "Decision",
        "report": "Open the report",
        "cancel": "Cancel this ticket",
        "cancelled": "The ticket was cancelled.",
        "language": "日本語",
        "seconds": "s",
        "submit": "File a ticket",
        "submit_button": "File the ticket",
        "subject_id": "Data subject",
        "subject_id_help": "The person's identifier in your systems; stored only as a keyed hash.",
        "legal_basis": "Legal basis",
        "jurisdiction": "Jurisdiction",
        "requester": "Filed by",
        "reason_field": "Reason (optional)",
        "records": "Records file",
        "records_help": (
            "JSON Lines (one record per line) or a JSON array, UTF-8: "
            '{"question", "answer", "key_facts"} or {"text"}.'
        ),
        "error": "Something went wrong",
        "error_prefix": "Error:",
        "back_to_tickets": "Back to the tickets",
        "may_not_file": "Your role may not file tickets.",
        "operations": "Operations",
        "held": "Held for review",
        "no_held": "No ticket is held.",
        "decide": "Decision",
        "decision_reason": "Reason",
        "approve": "Approve and publish",
        "reject": "Reject",
        "approved": "The ticket was approved and its version published.",
        "rejected": "The ticket was rejected.",
        "reason_required": "A reason is required.",
        "jobs_pending": "Queued jobs",
        "jobs_running": "Running jobs",
        "jobs_failed": "Failed jobs",
        "job": "Job",
        "attempt": "Attempt",
        "last_error": "Last error",
        "models": "Models",
        "served": "Served now",
        "version": "version",
        "parent": "Parent",
        "status": "Status",
        "method": "Method",
        "created": "Created",
        "serving": "served",
        "rollback_to": "Roll back to version (empty: the parent)",
        "rollback": "Roll back",
        "rolled_back": "Production was rolled back.",
        "rollback_invalid": "Give a reason and a version number.",
        "audit": "Audit",
        "verify": "Verify the chain",
        "chain_ok": "The chain is intact.",
        "chain_broken": "The chain is broken.",
        "events_checked": "events checked",
        "checkpoints": "signed checkpoints",
        "event_type": "Event type",
        "since": "From",
        "until": "Until",
        "filter": "Filter",
        "events": "events",
        "export": "Export",
        "when": "When",
        "actor": "Actor",
        "next_page": "Next page",
        "bad_date": "Use a date such as 2026-12-31.",
        "held_because": "Held for review: the new version missed these rules of the policy.",
        "undone_because": (
            "The model version that served this deletion was rolled back: the data may be "
            "answered again. File the request again."
        ),
        "nothing_reproduced": (
            "Before unlearning, the model reproduced none of this data, so the evaluation "
            "cannot show it forgotten (the report gives its answer probability before and "
            "after)."
        ),
        "bad_ticket_id": (
            "Not a ticket id: paste the whole id (36 characters, from the ticket page)."
        ),
    },
    "ja": {
        "app": "obliviate",
        "login": "ログイン",
        "logout": "ログアウト",
        "api_key": "API キー",
        "api_key_help": "管理者から渡されたキー。セッション Cookie に保存されます。",
        "bad_key": "このキーは無効か、失効しています。",
        "login_expired": "このログインフォームは期限切れです（または別のサイトからの送信です）。"
        "もう一度お試しください。",
        "tickets": "削除チケット",
        "no_tickets": "チケットはまだありません。",
        "ticket": "チケット",
        "model": "モデル",
        "state": "状態",
        "stage": "段階",
        "progress": "進捗",
        "eta": "残り時間",
        "due": "期限",
        "received": "受付",
        "reason": "判定",
        "report": "報告書を開く",
        "cancel": "このチケットを取り消す",
        "cancelled": "チケットを取り消しました。",
        "language": "English",
        "seconds": "秒",
        "submit": "チケットを登録",
        "submit_button": "チケットを登録する",
        "subject_id": "データ主体",
        "subject_id_help": "貴社システムでの本人の識別子。鍵付きハッシュとしてのみ保存されます。",
        "legal_basis": "法的根拠",
        "jurisdiction": "法域",
        "requester": "登録者",
        "reason_field": "理由（任意）",
        "records": "レコードファイル",
        "records_help": (
            "JSON Lines（1 行 1 レコード）または JSON 配列、UTF-8："
            '{"question", "answer", "key_facts"} または {"text"}。'
        ),
        "error": "問題が発生しました",
        "error_prefix": "エラー：",
        "back_to_tickets": "チケット一覧へ戻る",
        "may_not_file": "このロールではチケットを登録できません。",
        "operations": "運用",
        "held": "保留中（要確認）",
        "no_held": "保留中のチケットはありません。",
        "decide": "判断",
        "decision_reason": "理由",
        "approve": "承認して公開",
        "reject": "却下",
        "approved": "チケットを承認し、バージョンを公開しました。",
        "rejected": "チケットを却下しました。",
        "reason_required": "理由を入力してください。",
        "jobs_pending": "待機中のジョブ",
        "jobs_running": "実行中のジョブ",
        "jobs_failed": "失敗したジョブ",
        "job": "ジョブ",
        "attempt": "試行",
        "last_error": "最後のエラー",
        "models": "モデル",
        "served": "現在の提供",
        "version": "バージョン",
        "parent": "親",
        "status": "状態",
        "method": "手法",
        "created": "作成",
        "serving": "提供中",
        "rollback_to": "戻すバージョン（空欄：親）",
        "rollback": "ロールバック",
        "rolled_back": "本番をロールバックしました。",
        "rollback_invalid": "理由とバージョン番号を入力してください。",
        "audit": "監査",
        "verify": "チェーンを検証",
        "chain_ok": "チェーンは改ざんされていません。",
        "chain_broken": "チェーンが壊れています。",
        "events_checked": "件のイベントを検証",
        "checkpoints": "件の署名付きチェックポイント",
        "event_type": "イベント種別",
        "since": "開始",
        "until": "終了",
        "filter": "絞り込み",
        "events": "件のイベント",
        "export": "エクスポート",
        "when": "日時",
        "actor": "実行者",
        "next_page": "次のページ",
        "bad_date": "2026-12-31 のような日付で入力してください。",
        "held_because": "保留: 新しいバージョンはポリシーの次の規則を満たしませんでした。",
        "undone_because": (
            "この削除を反映したモデルのバージョンはロールバックされました。データが再び回答に"
            "現れる可能性があります。依頼をもう一度提出してください。"
        ),
        "nothing_reproduced": (
            "忘却の前から、モデルはこのデータを再現していませんでした。そのため評価では忘れたことを"
            "示せません（レポートに前後の回答確率があります）。"
        ),
        "bad_ticket_id": (
            "チケット ID ではありません。チケットのページから ID 全体（36 文字）を"
            "貼り付けてください。"
        ),
    },
}

# A form field's problem, by pydantic's error type, filled from the error's context. English:
# pydantic's own messages; a type missing here shows that English message.
FIELD_ERRORS: dict[str, dict[str, str]] = {
    "en": {},
    "ja": {
        "missing": "入力してください",
        "string_too_short": "{min_length} 文字以上で入力してください",
        "string_too_long": "{max_length} 文字以内で入力してください",
        "enum": "一覧から選んでください",
        "too_short": "記録が 1 件もありません",
    },
}
