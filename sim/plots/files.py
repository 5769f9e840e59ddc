"""A figure as the bytes of its files: PNG (Agg) and SVG with ids from a fixed salt and no date, every text drawn
as plain text (no mathtext from names in input files)."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from typing import Any

from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

SVG_HASH_SALT = "k8s-service-sim"
"""The salt of the ids matplotlib gives an SVG's clip paths and glyphs (``svg.hashsalt``; unset, each file draws
random ones), so that the same figure always gives the same bytes."""


@contextlib.contextmanager
def plain_text(fig: Figure) -> Iterator[None]:
    """Draw ``fig`` with every text as plain text: names from input files (a Service called ``$\\undefined{x}$``)
    never reach matplotlib's mathtext parser, neither in the texts made already nor in the tick labels made while
    drawing; a glyph the font lacks is drawn as a box without a warning."""
    for text in fig.findobj(Text):
        text.set_parse_math(False)
    with rc_context({"text.parse_math": False}), warnings.catch_warnings():
        # a name in a script the font lacks (CJK, emoji) draws as boxes; not a warning per glyph on stderr
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
        yield


def save_svg(fig: Figure, target: Any) -> None:
    """Write ``fig`` as SVG to a path or a text stream, without a date and with ids from a fixed salt: equal
    figures give equal files. (The salt is set for this one call, in matplotlib's rc_context.)"""
    from matplotlib import rc_context

    FigureCanvasAgg(fig)
    with rc_context({"svg.hashsalt": SVG_HASH_SALT}), plain_text(fig):
        fig.savefig(target, format="svg", metadata={"Date": None})


def figure_files(fig: Figure) -> dict[str, bytes]:
    """``fig`` as the bytes of its files, by suffix: ``.png`` (150 dpi, Agg) and ``.svg`` (the command writes them
    through ``sim.io.output``)."""
    FigureCanvasAgg(fig)
    png, svg = io.BytesIO(), io.StringIO()
    with plain_text(fig):
        fig.savefig(png, format="png", dpi=150)
    engine = fig.get_layout_engine()
    fig.set_layout_engine("none")  # keep the layout the PNG computed: laying out text again costs as much
    try:
        save_svg(fig, svg)
    finally:
        fig.set_layout_engine(engine)
    return {".png": png.getvalue(), ".svg": svg.getvalue().encode()}
