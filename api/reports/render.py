"""The report as one self-contained HTML page (jinja2, the plots inline), printable to PDF."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.pages.messages import STATE_NAMES
from api.reports.messages import messages
from api.reports.plots import curve_plot_svg, leak_plot_svg, tradeoff_plot_svg


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(["html", "j2"]),
    )


def num(value, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def rule_name(rule: dict, t: dict[str, str]) -> str:
    """A policy rule's name (content.policy_rules) in the report's language."""
    if rule["rule"] == "leak_rate":
        return t["rule_leak"].format(probe=rule["probe"])
    return t[f"rule_{rule['rule']}"]


def render_html(report: dict, lang: str) -> str:
    t = messages(lang)
    plots = {
        "leak": leak_plot_svg(report["forgetting"], t),
        "tradeoff": tradeoff_plot_svg(report["forgetting"], report["utility"], t),
        "curve": curve_plot_svg(report["curve"], t),
    }
    template = _environment().get_template("report.html.j2")
    return template.render(r=report, t=t, lang=lang, plots=plots, num=num, rule_name=rule_name,
                           state=STATE_NAMES[lang].get(report["ticket"]["state"]))  # fmt: skip
