"""The learning curve as a small hand-written SVG, and as Markdown that shows it.

Prefect's image artifacts only take public URLs, but its Markdown artifacts
render an image whose source is a `data:` URL, so the picture travels inside
the artifact itself and needs no web server or plotting library.
"""

import base64
import math
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 560, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 28, 44
SERIES = (("loss", "training loss", "#1f77b4"),
          ("val_loss", "held-out loss", "#d62728"))


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    step = (high - low) / (count - 1)
    return [low + i * step for i in range(count)]


def _bounds(history: list[dict]) -> tuple[float, float]:
    values = [row[name] for row in history for name, _, _ in SERIES
              if math.isfinite(row.get(name, math.nan))]
    low, high = min(values), max(values)
    pad = max((high - low) * 0.08, 1e-3)
    return low - pad, high + pad


def learning_curve_svg(history: list[dict], title: str = "Learning curve") -> str:
    """Training and held-out loss per epoch, nats/char, as an SVG document."""
    if not history:
        raise ValueError("the history is empty: there is no curve to draw")
    epochs = [row["epoch"] for row in history]
    first, last = min(epochs), max(epochs)
    low, high = _bounds(history)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(epoch):
        # A single epoch sits in the middle instead of dividing by zero.
        share = 0.5 if last == first else (epoch - first) / (last - first)
        return LEFT + share * plot_w

    def y(value):
        return TOP + (high - value) / (high - low) * plot_h

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
             f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
             'font-family="sans-serif" font-size="12">',
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
             f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" '
             f'font-size="14">{escape(title)}</text>']
    for value in _ticks(low, high):
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" '
                     f'y2="{y(value):.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" '
                     f'text-anchor="end">{value:.3f}</text>')
    for epoch in sorted(set(_epoch_ticks(first, last))):
        parts.append(f'<text x="{x(epoch):.1f}" y="{HEIGHT - BOTTOM + 16}" '
                     f'text-anchor="middle">{epoch}</text>')
    parts.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" '
                 'text-anchor="middle">epoch</text>')
    parts.append(f'<text x="14" y="{TOP + plot_h / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {TOP + plot_h / 2})">nats/char</text>')
    parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" '
                 'fill="none" stroke="#888"/>')
    for i, (name, label, colour) in enumerate(SERIES):
        points = [(x(row["epoch"]), y(row[name])) for row in history
                  if math.isfinite(row.get(name, math.nan))]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                     'stroke-width="2"/>')
        parts += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>'
                  for px, py in points]
        ly = TOP + 14 + 16 * i
        parts.append(f'<line x1="{WIDTH - RIGHT - 130}" x2="{WIDTH - RIGHT - 110}" '
                     f'y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" '
                     'stroke-width="2"/>')
        parts.append(f'<text x="{WIDTH - RIGHT - 104}" y="{ly}">{label}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _epoch_ticks(first: int, last: int, most: int = 10) -> list[int]:
    step = max(1, math.ceil((last - first + 1) / most))
    return list(range(first, last + 1, step)) + [last]


def svg_data_url(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def learning_curve_markdown(history: list[dict]) -> str:
    """A Markdown page with the curve as an image and the numbers as a table."""
    rows = "\n".join(
        f"| {r['epoch']} | {r['loss']:.4f} | {r['val_loss']:.4f} | {r['seconds']:.1f} |"
        for r in history)
    return (f"# Learning curve\n\n"
            f"![training and held-out loss per epoch]"
            f"({svg_data_url(learning_curve_svg(history))})\n\n"
            f"| epoch | loss | held-out loss | seconds |\n|---|---|---|---|\n{rows}\n")
