"""Small, escaped SVG building blocks: rects, lines and text need no SVG library."""

from __future__ import annotations

import math
from html import escape


def attrs(**values: object) -> str:
    """` name="value"` pairs, escaped; `data_x` becomes `data-x`, `None` values are dropped."""
    parts = []
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, float):
            value = _num(value)
        parts.append(f' {name.rstrip("_").replace("_", "-")}="{escape(str(value), quote=True)}"')
    return "".join(parts)


def rect(**values: object) -> str:
    """A `<rect>` element."""
    return f"<rect{attrs(**values)}/>"


def line(**values: object) -> str:
    """A `<line>` element."""
    return f"<line{attrs(**values)}/>"


def text(content: str, **values: object) -> str:
    """A `<text>` element with `content` escaped."""
    return f"<text{attrs(**values)}>{escape(content)}</text>"


def _num(value: float) -> str:
    # Two decimals keep sub-pixel positions exact enough and the file small.
    return f"{value:.2f}".rstrip("0").rstrip(".")


def nice_step(span: float, target_ticks: int = 8) -> float:
    """A round tick step (1, 2 or 5 × 10ⁿ) giving about `target_ticks` ticks over `span`."""
    if span <= 0:
        return 1.0
    raw = span / target_ticks
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * magnitude:
            return float(factor * magnitude)
    return 10.0 * magnitude


def truncate(label: str, limit: int) -> str:
    """`label` cut to `limit` characters with an ellipsis."""
    return label if len(label) <= limit else label[: limit - 1] + "…"
