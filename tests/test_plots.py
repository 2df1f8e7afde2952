"""The learning-curve picture: valid SVG, one point per epoch, inside the frame."""

import base64
import re
import xml.etree.ElementTree as ET

import pytest

from charpipe import plots

SVG = "{http://www.w3.org/2000/svg}"


def rows(losses, val_losses):
    return [{"epoch": i + 1, "loss": a, "val_loss": b, "seconds": 1.0}
            for i, (a, b) in enumerate(zip(losses, val_losses))]


def points(svg: str, colour: str) -> list[tuple[float, float]]:
    root = ET.fromstring(svg)
    [line] = [p for p in root.iter(f"{SVG}polyline") if p.get("stroke") == colour]
    return [tuple(map(float, xy.split(","))) for xy in line.get("points").split()]


def test_the_curve_follows_the_numbers():
    history = rows([3.0, 2.5, 2.2, 2.1], [2.9, 2.6, 2.4, 2.45])
    svg = plots.learning_curve_svg(history)
    train = points(svg, plots.SERIES[0][2])
    held_out = points(svg, plots.SERIES[1][2])
    assert len(train) == len(held_out) == 4
    xs = [x for x, _ in train]
    assert xs == sorted(xs) and xs[0] == plots.LEFT
    # SVG's y axis points down: a falling loss is a rising y coordinate.
    assert [y for _, y in train] == sorted(y for _, y in train)
    assert held_out[3][1] < held_out[2][1]  # the held-out loss went up at the end
    for x, y in train + held_out:
        assert plots.LEFT <= x <= plots.WIDTH - plots.RIGHT
        assert plots.TOP <= y <= plots.HEIGHT - plots.BOTTOM


def test_one_epoch_and_flat_losses_still_draw():
    svg = plots.learning_curve_svg(rows([2.0], [2.0]))
    [(x, y)] = points(svg, plots.SERIES[0][2])
    assert plots.LEFT < x < plots.WIDTH - plots.RIGHT


def test_the_markdown_carries_the_picture_inline():
    history = rows([3.0, 2.5], [2.9, 2.6])
    markdown = plots.learning_curve_markdown(history)
    pattern = r"\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)"
    [encoded] = re.findall(pattern, markdown)
    assert base64.b64decode(encoded).decode() == plots.learning_curve_svg(history)
    assert "| 2 | 2.5000 | 2.6000 |" in markdown


def test_an_empty_history_is_refused():
    with pytest.raises(ValueError, match="empty"):
        plots.learning_curve_svg([])
