"""The report's plot as inline SVG (the HTML stays one self-contained, printable file)."""

from __future__ import annotations

import io
import warnings


def leak_plot_svg(forgetting: list[dict], labels: dict[str, str]) -> str | None:
    """Leak rate per probe, before and after, as grouped bars; hatching tells the two apart
    (no information by colour alone). None when nothing was measured."""
    rows = [r for r in forgetting if r["before"] is not None or r["after"] is not None]
    if not rows:
        return None
    import matplotlib  # imported here: only report requests pay for it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Text stays text in the SVG (the browser's fonts draw Japanese labels; matplotlib's own
    # font has no CJK glyphs, hence its warnings while it measures them).
    with plt.rc_context({"svg.fonttype": "none"}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        return _draw(plt, rows, labels)


def _draw(plt, rows: list[dict], labels: dict[str, str]) -> str:
    figure, axes = plt.subplots(figsize=(6.5, 2.8))
    positions = range(len(rows))
    before = [r["before"] or 0.0 for r in rows]
    after = [r["after"] or 0.0 for r in rows]
    axes.bar([p - 0.2 for p in positions], before, 0.4, label=labels["before"], color="#bbbbbb",
             edgecolor="black", hatch="//")  # fmt: skip
    axes.bar([p + 0.2 for p in positions], after, 0.4, label=labels["after"], color="#4477aa",
             edgecolor="black")  # fmt: skip
    axes.set_xticks(list(positions), [r["probe"] for r in rows], rotation=20, fontsize=8)
    axes.set_ylim(0, 1)
    axes.set_ylabel("leak rate")
    axes.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    plt.close(figure)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]  # drop the XML prolog: it is inlined in HTML
