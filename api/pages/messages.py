"""Every string of the web pages, in English and Japanese (one catalogue; a test keeps the two
key sets equal)."""

from __future__ import annotations

from api.reports.messages import LANGUAGES  # one list of languages for the report and pages

__all__ = ["LANGUAGES", "MESSAGES"]

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "app": "obliviate",
        "login": "Log in",
        "logout": "Log out",
        "api_key": "API key",
        "api_key_help": "The key your administrator gave you; it is kept in a session cookie.",
        "bad_key": "This key is not valid or was revoked.",
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
    },
    "ja": {
        "app": "obliviate",
        "login": "ログイン",
        "logout": "ログアウト",
        "api_key": "API キー",
        "api_key_help": "管理者から渡されたキー。セッション Cookie に保存されます。",
        "bad_key": "このキーは無効か、失効しています。",
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
    },
}
