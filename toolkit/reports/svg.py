"""matplotlib figures as deterministic inline SVG for report.html.

Every chart is a `Figure` on the SVG canvas (no Agg, no pyplot state), drawn under fixed rcParams and
saved with a fixed hash salt and no date, so two renders of the same run are byte-identical. Text stays
text (`svg.fonttype = none`: searchable, small, no embedded font). Marks that carry a tooltip are given
a gid; `to_inline_svg` turns each into `<g class="mark"><title>…</title>`, which the page's self-check
counts after load.
"""

from __future__ import annotations

import html
import io
import re
from typing import Any

# Run colours come from the view model; these tell configurations apart when one machine is shown.
CONFIG_PALETTE = ("#2563eb", "#ea580c", "#059669", "#9333ea", "#db2777", "#0891b2", "#65a30d", "#a16207", "#475569")
MARKERS = ("o", "s", "^", "D", "v", "p", "h", "*", "P", "X", "<", ">", "d")
FAIL = "#dc2626"
INK, MUTED, GRID = "#1e293b", "#475569", "#e2e8f0"


def style(chart_id: str) -> Any:
    """rcParams for one chart; the hash salt differs per chart so ids never collide within the page."""
    return {
        "svg.hashsalt": f"edgekit-{chart_id}",
        "svg.fonttype": "none",
        "font.family": "DejaVu Sans",
        "font.size": 9,
        "axes.edgecolor": "#cbd5e1",
        "axes.labelcolor": INK,
        "axes.facecolor": "#f8fafc",
        "axes.grid": True,
        "axes.axisbelow": True,
        "grid.color": GRID,
        "grid.linewidth": 0.8,
        "xtick.color": MUTED,
        "ytick.color": MUTED,
        "legend.frameon": False,
        "path.simplify": False,
        "text.parse_math": False,  # a `$` in a name is text, not mathtext
    }


def new_figure(width_in: float, height_in: float) -> Any:
    """A matplotlib Figure on the SVG canvas (72 dpi, so one display unit is one point)."""
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=72)
    FigureCanvasSVG(fig)
    return fig


class Tips:
    """Tooltips by gid: `tag(artist, text)` gives the artist a fixed gid and remembers its text."""

    def __init__(self, chart_id: str) -> None:
        self.chart_id = chart_id
        self.texts: dict[str, str] = {}

    def tag(self, artist: Any, text: str) -> Any:
        gid = f"{self.chart_id}-mark-{len(self.texts)}"
        artist.set_gid(gid)
        self.texts[gid] = text
        return artist


def to_inline_svg(fig: Any, chart_id: str, title: str, tips: Tips) -> str:
    """The figure as an `<svg class="chart" id=…>` element to inline in HTML (no XML prolog, no URL)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    # Inline SVG in HTML needs no namespace declarations; dropping them leaves no URL in the page.
    text = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", text)
    text = re.sub(r'\s+(width|height)="[\d.]+pt"', "", text, count=2)
    # matplotlib numbers its elements per figure (figure_1, axes_1, ...): prefix them so ids stay unique
    # across the page's charts. Marks already carry the chart id.
    text = re.sub(r'(id="|url\(#|href="#)(?!chart-)', rf"\g<1>{chart_id}-", text)
    text = text.replace("<svg", f'<svg class="chart" id="{chart_id}" role="img" aria-label="{html.escape(title)}"', 1)
    for gid, tip in tips.texts.items():
        text = text.replace(
            f'<g id="{gid}">', f'<g id="{gid}" class="mark"><title>{html.escape(tip, quote=False)}</title>', 1
        )
    return text.strip()


def darken(colour: str, factor: float = 0.75) -> str:
    rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{int(c * factor):02x}" for c in rgb)


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks per decade (fewer when the range is wide) within [lo, hi]: readable on a log axis."""
    import math

    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    ticks: list[float] = []
    for steps in ((1, 2, 5), (1, 3), (1,)):
        ticks = [m * 10.0**d for d in decades for m in steps if lo <= m * 10.0**d <= hi]
        if len(ticks) <= 10:
            break
    return ticks


def tick_text(v: float) -> str:
    if v >= 1000:
        return f"{v:,.0f}"
    return f"{v:g}"


def log_axis(axis: Any, lo: float, hi: float) -> None:
    """A log axis over [lo, hi] with plain-number 1-2-5 tick labels and no minor ticks."""
    from matplotlib.ticker import FixedLocator, NullLocator

    ticks = log_ticks(lo, hi)
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_minor_locator(NullLocator())
    axis.set_ticklabels([tick_text(t) for t in ticks])


def log_domain(values: list[float], pad: float = 1.2) -> tuple[float, float]:
    """A log range around the values, at least half a decade wide."""
    import math

    vals = [v for v in values if v > 0] or [0.01, 1.0]
    lo, hi = min(vals) / pad, max(vals) * pad
    if hi / lo < 3:
        mid = math.sqrt(lo * hi)
        lo, hi = mid / math.sqrt(3), mid * math.sqrt(3)
    return lo, hi
