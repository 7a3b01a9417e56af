"""The report's plots as inline SVG (the HTML stays one self-contained, printable file). Series
differ by hatching, marker and line style as well as colour (no information by colour alone)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from statistics import fmean

LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "x")


def leak_plot_svg(forgetting: list[dict], labels: dict[str, str]) -> str | None:
    """Leak rate per probe, before and after, as grouped bars. None when nothing was
    measured."""
    rows = [r for r in forgetting if r["before"] is not None or r["after"] is not None]
    if not rows:
        return None

    def draw(axes) -> None:
        positions = range(len(rows))
        before = [r["before"] or 0.0 for r in rows]
        after = [r["after"] or 0.0 for r in rows]
        axes.bar([p - 0.2 for p in positions], before, 0.4, label=labels["before"],
                 color="#bbbbbb", edgecolor="black", hatch="//")  # fmt: skip
        axes.bar([p + 0.2 for p in positions], after, 0.4, label=labels["after"],
                 color="#4477aa", edgecolor="black")  # fmt: skip
        axes.set_xticks(list(positions), [r["probe"] for r in rows], rotation=20, fontsize=8)
        axes.set_ylim(0, 1)
        axes.set_ylabel(labels["leak_rate"])

    return _svg(draw)


def curve_plot_svg(curve: list[dict], labels: dict[str, str]) -> str | None:
    """The unlearning curve: each checked probe's leak rate at every check. None without
    checks."""
    probes = sorted({probe for check in curve for probe in check["leak_rate"]})
    if not probes:
        return None

    def draw(axes) -> None:
        for i, probe in enumerate(probes):
            points = [(c["step"], c["leak_rate"][probe]) for c in curve if probe in c["leak_rate"]]
            axes.plot(*zip(*points, strict=True), label=probe, marker=MARKERS[i % len(MARKERS)],
                      linestyle=LINE_STYLES[i % len(LINE_STYLES)])  # fmt: skip
        axes.set_ylim(-0.02, 1.02)
        axes.set_xlabel(labels["step"])
        axes.set_ylabel(labels["leak_rate"])

    return _svg(draw)


def tradeoff_plot_svg(forgetting: list[dict], utility: dict | None, labels) -> str | None:
    """Utility kept against the mean leak rate over the probes, before (1.0 by definition) and
    after: forgetting moves the point left, damage moves it down. None until both exist."""
    before = [r["before"] for r in forgetting if r["before"] is not None]
    after = [r["after"] for r in forgetting if r["after"] is not None]
    ratio = (utility or {}).get("ratio")
    if not before or not after or ratio is None:
        return None

    def draw(axes) -> None:
        start, end = (fmean(before), 1.0), (fmean(after), ratio)
        axes.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->"})
        axes.scatter(*start, marker="o", s=60, facecolors="none", edgecolors="black",
                     label=labels["before"])  # fmt: skip
        axes.scatter(*end, marker="s", s=60, color="#4477aa", edgecolors="black",
                     label=labels["after"])  # fmt: skip
        axes.set_xlim(-0.05, 1.05)
        axes.set_ylim(0, max(1.1, ratio + 0.1))
        axes.set_xlabel(labels["mean_leak_rate"])
        axes.set_ylabel(labels["utility_ratio"])

    return _svg(draw)


def _svg(draw: Callable) -> str:
    import matplotlib  # imported here: only report requests pay for it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Text stays text in the SVG (the browser's fonts draw Japanese labels; matplotlib's own
    # font has no CJK glyphs, hence its warnings while it measures them).
    with plt.rc_context({"svg.fonttype": "none"}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        figure, axes = plt.subplots(figsize=(6.5, 2.8))
        draw(axes)
        axes.legend(fontsize=8)
        figure.tight_layout()
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg")
        plt.close(figure)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]  # drop the XML prolog: it is inlined in HTML
