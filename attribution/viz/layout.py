"""Pixel geometry and colours shared by every figure: square cells, label room, themes, slides.

Figures are laid out in pixels (margins 0, every axis placed by its domain), so a map has
square cells of a known size and the same layout on the page, in the camera PNG and in every
export. Text widths are estimated from character counts (`CHAR_EM` per character, a little
wide on purpose), so labels get room without measuring fonts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

FONT = "Inter, 'Segoe UI', 'Helvetica Neue', Arial, sans-serif"
CHAR_EM = 0.64  # estimated width of one character, in font sizes (DejaVu/Inter are ~0.55-0.62)
MAX_LABEL_CHARS = 18
EDGE = 10  # px of blank border around a figure
GAP = 4  # px between a map and its strips and totals
MIN_CELL = 13  # px: the smallest cell on the page (a 10 px label still fits)


@dataclass(frozen=True)
class Style:
    """How figures are drawn: theme, font scale, and an optional fixed canvas to fit into.

    canvas = (width, height) in px makes the builders choose the cell size that fills it
    (the "slide" preset: 16:9 with large fonts); without it cells follow the number of rows.
    """

    dark: bool = False
    font_scale: float = 1.0
    canvas: tuple[int, int] | None = None
    name: str = "page"
    max_cell: float | None = None  # cap on the cell size (maps side by side in narrow columns)
    # The colour bar above the map and the row totals left of it: the page's maps, which may be wider than
    # their column and scroll sideways, keep what explains them in view at the column's left edge.
    keys_left: bool = False

    def font(self, size: float) -> float:
        return round(size * self.font_scale, 1)

    def themed(self, dark: bool) -> Style:
        return replace(self, dark=dark)


PAGE = Style()
ON_PAGE = Style(keys_left=True)  # the page's own maps; downloads and exports are drawn with PAGE
SLIDE = Style(font_scale=1.7, canvas=(1920, 1080), name="slide")
PRESETS = {"page": PAGE, "slide": SLIDE}


@dataclass(frozen=True)
class Palette:
    """Colours of one theme. `diverging` is the colour scale centred on 0 (blue < 0 < red)."""

    text: str
    muted: str
    paper: str
    outline: str
    hover_bg: str
    hover_border: str
    rank_bg: str
    positive: str
    negative: str
    rule: str
    diverging: tuple[tuple[float, str], ...]


# ColorBrewer RdBu (reversed) on white; on dark paper the middle is dark so pale cells recede too.
_RDBU = (
    "#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582", "#d6604d", "#b2182b",
    "#67001f",
)  # fmt: skip
_RDBU_DARK = (
    "#9ecae1", "#6baed6", "#4292c6", "#2b6a9e", "#1d3f5e", "#262a33", "#5e2a24", "#9b3b2c", "#d6604d", "#f4a582",
    "#fddbc7",
)  # fmt: skip
LIGHT = Palette(
    text="#1f2937",
    muted="#6b7280",
    paper="#ffffff",
    outline="#111827",
    hover_bg="#ffffff",
    hover_border="#9ca3af",
    rank_bg="rgba(255,255,255,0.78)",
    positive="#d6604d",
    negative="#4393c3",
    rule="#d1d5db",
    diverging=tuple((k / 10, c) for k, c in enumerate(_RDBU)),
)
DARK = Palette(
    text="#e5e7eb",
    muted="#9ca3af",
    paper="#0e1117",
    outline="#f9fafb",
    hover_bg="#1f2937",
    hover_border="#6b7280",
    rank_bg="rgba(14,17,23,0.78)",
    positive="#e4735f",
    negative="#5aa3d6",
    rule="#374151",
    diverging=tuple((k / 10, c) for k, c in enumerate(_RDBU_DARK)),
)


def palette(style: Style) -> Palette:
    return DARK if style.dark else LIGHT


def text_width(chars: float, size: float) -> float:
    """Estimated width in px of `chars` characters at font size `size`."""
    return chars * size * CHAR_EM


def shorten(text: str, limit: int = MAX_LABEL_CHARS) -> str:
    """`text` cut to `limit` characters with an ellipsis (hover text keeps the full string)."""
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "…"


def cell_for(n: int) -> int:
    """Side of a square cell in px for a map whose longer side has `n` rows: roomy to compact.

    Past 64 rows the map keeps 13 px cells (every label still drawn) and scrolls on the page.
    """
    if n <= 12:
        return 36
    if n <= 24:
        return 28
    if n <= 40:
        return 20
    if n <= 64:
        return 15
    return 13


def tick_font(n: int) -> float:
    """Tick label size for a map whose longer side has `n` rows (fits the cell of `cell_for`)."""
    if n <= 24:
        return 12.0
    if n <= 40:
        return 11.0
    return 10.0


@dataclass(frozen=True)
class Grid:
    """One map panel in px: label room, POS strips, the square-celled grid, totals bars.

    Horizontally: left (row labels) | strip | GAP | grid | 2 GAP | totals_w, or with totals_left
    left (row labels) | totals_w | 2 GAP | strip | GAP | grid.
    Vertically: top (column labels again, on maps taller than TOP_LABELS_PX) | totals_h | 2 GAP | grid | GAP |
    strip | bottom (column labels).
    """

    n_rows: int
    n_cols: int
    cell: float
    font: float
    angle: int  # column label rotation: 0, -45 or -90
    left: float
    bottom: float
    strip: float
    totals_w: float
    totals_h: float
    top: float = 0.0
    totals_left: bool = False

    @property
    def grid_w(self) -> float:
        return self.n_cols * self.cell

    @property
    def grid_h(self) -> float:
        return self.n_rows * self.cell

    @property
    def totals_x(self) -> float:
        """Left edge of the row totals' bars from the panel's left edge."""
        if self.totals_left:
            return self.left
        return self.grid_x + self.grid_w + 2 * GAP

    @property
    def strip_x(self) -> float:
        """Left edge of the rows' POS strip from the panel's left edge."""
        return self.left + (self.totals_w + 2 * GAP if self.totals_left and self.totals_w else 0)

    @property
    def grid_x(self) -> float:
        """Left edge of the grid from the panel's left edge."""
        return self.strip_x + self.strip + (GAP if self.strip else 0)

    @property
    def grid_y(self) -> float:
        """Top edge of the grid from the panel's top edge."""
        return self.top + self.totals_h + (2 * GAP if self.totals_h else 0)

    @property
    def width(self) -> float:
        return self.grid_x + self.grid_w + (2 * GAP + self.totals_w if self.totals_w and not self.totals_left else 0)

    @property
    def height(self) -> float:
        return self.grid_y + self.grid_h + (GAP + self.strip if self.strip else 0) + self.bottom


# A map taller than this repeats its column labels above it (on the page the bottom ones scroll away); not
# a map fitted to a given cell (slides, combined figures: their canvas is sized without that band).
TOP_LABELS_PX = 600


def grid_geometry(
    n_rows: int,
    n_cols: int,
    row_chars: float,
    col_chars: float,
    style: Style,
    *,
    strips: bool = False,
    totals: bool = False,
    cell: float | None = None,
) -> Grid:
    """Geometry of one map: cell size from the row counts (or `cell`), label room from label lengths.

    row_chars/col_chars: the longest row/column label in characters (POS suffixes counted).
    """
    n = max(n_rows, n_cols, 1)
    size = cell if cell is not None else float(cell_for(n))
    if cell is None and style.max_cell is not None:
        size = max(min(size, style.max_cell), float(MIN_CELL))
    font = min(style.font(tick_font(n)), max(size / 1.3, 8.0))
    title_room = style.font(12) * 1.3 + 8
    col_px = text_width(col_chars, font)
    if col_px <= size - 4:
        angle, bottom = 0, font * 1.4 + 6
    elif size >= 24:
        angle, bottom = -45, (col_px + font) * math.sqrt(0.5) + 8
    else:
        angle, bottom = -90, col_px + 8
    strip = style.font(14) if strips else 0.0
    left = text_width(row_chars, font) + 10 + title_room
    if angle == -45:  # the first column's label slants left past the grid's edge
        left = max(left, (col_px + font) * math.sqrt(0.5) - strip - size / 2 + 6)
    return Grid(
        n_rows=max(n_rows, 1),
        n_cols=max(n_cols, 1),
        cell=size,
        font=font,
        angle=angle,
        left=left,
        bottom=bottom + title_room,
        strip=strip,
        totals_w=style.font(58) if totals else 0.0,
        totals_h=style.font(44) if totals else 0.0,
        top=bottom if cell is None and max(n_rows, 1) * size > TOP_LABELS_PX else 0.0,
        totals_left=style.keys_left,
    )


def fit_cell(
    panels: list[tuple[int, int, float, float]],
    style: Style,
    width: float,
    height: float,
    *,
    strips: bool,
    totals: bool,
    max_cell: float = 80.0,
) -> float:
    """The largest cell at which panels (n_rows, n_cols, row_chars, col_chars) side by side fit in width x height."""
    cell = max_cell
    for _ in range(4):  # label room depends on the cell (font, rotation): settle in a few rounds
        grids = [grid_geometry(r, c, rc, cc, style, strips=strips, totals=totals, cell=cell) for r, c, rc, cc in panels]
        fixed_w = sum(g.width - g.grid_w for g in grids)
        cols = sum(g.n_cols for g in grids)
        by_width = (width - fixed_w) / max(cols, 1)
        by_height = min((height - (g.height - g.grid_h)) / g.n_rows for g in grids)
        new = max(min(by_width, by_height, max_cell), 6.0)
        if abs(new - cell) < 0.5:
            return math.floor(new)
        cell = new
    return math.floor(cell)


def colorbar_width(style: Style) -> float:
    """Room for a vertical colour bar with its tick labels and side title (none when it lies above the map)."""
    if style.keys_left:
        return 0.0
    return style.font(12) + 8 + text_width(6, style.font(11)) + style.font(12) * 1.4 + 10


def colorbar_band(style: Style) -> float:
    """Height of the band above the map that holds a horizontal colour bar (keys_left): title, bar, ticks."""
    if not style.keys_left:
        return 0.0
    return style.font(12) * 1.5 + style.font(10) + style.font(11) * 1.5 + 10


def header_height(style: Style, subtitle_lines: int = 0, legend_rows: int = 0) -> float:
    """Title, subtitle lines and legend rows above the panels."""
    return (
        EDGE
        + style.font(15) * 1.5
        + subtitle_lines * style.font(12) * 1.45
        + (legend_rows * style.font(11) * 1.9 + 6 if legend_rows else 0)
        + 14
    )


def base_layout(
    style: Style, width: float, height: float, title: str, subtitle: str = "", *, hover: bool = True
) -> dict[str, Any]:
    """The plotly layout every figure shares: the title block at the top left (EDGE from the corner),
    the pixel size (margins 0), fonts, paper colours and, with `hover`, the hover label's look."""
    colours = palette(style)
    layout: dict[str, Any] = dict(
        title=dict(
            text=title,
            subtitle=dict(text=subtitle, font=dict(size=style.font(12), color=colours.muted)),
            x=EDGE / width,
            xref="container",
            xanchor="left",
            y=1.0 - EDGE / height,
            yref="container",
            yanchor="top",
            font=dict(size=style.font(15), color=colours.text),
        ),
        width=math.ceil(width),
        height=math.ceil(height),
        autosize=False,
        margin=dict(l=0, r=0, t=0, b=0, pad=0),
        font=dict(family=FONT, color=colours.text),
        paper_bgcolor=colours.paper,
        plot_bgcolor=colours.paper,
    )
    if hover:
        layout["hoverlabel"] = dict(
            bgcolor=colours.hover_bg,
            bordercolor=colours.hover_border,
            font=dict(size=style.font(13), family=FONT, color=colours.text),
        )
    return layout
