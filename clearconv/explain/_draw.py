"""Drawing helpers shared by every explain figure: one look, one set of colour maps.

Figures are plain :class:`matplotlib.figure.Figure` objects rendered by the Agg canvas
(no pyplot, no global state, no display needed). Layouts are placed in inches, so the
size of a matrix cell, and therefore of the number written in it, is known before
anything is drawn: numbers are sized to fit their cells.

Colour maps, with the same meaning in every figure:

- ``PIXELS`` ("Greys"): non-negative input values drawn as a matrix (0 = white paper);
- ``SIGNED`` ("RdBu_r", symmetric around 0 = white): kernels, feature maps, gradients,
  products, anything with a sign;
- ``COUNTS`` ("Oranges"): counts (how often a pixel is used, how often it wins a max);
- ``CHANNELS``: "Reds", "Greens", "Blues" for the R, G, B planes of a photo;
- photos themselves are shown in their own colours ("gray" for one channel).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ClearConvError
from ..io.files import atomic_write

PIXELS = "Greys"
SIGNED = "RdBu_r"
COUNTS = "Oranges"
CHANNELS = {"R": "Reds", "G": "Greens", "B": "Blues"}
#: the highlight of "where we are now" (current window, current output cell)
FOCUS = "#ff7f0e"
#: a second highlight (the next window, a kernel)
SECOND = "#2ca02c"
#: what padding cells look like
PAD_FACE = "#d9d9d9"

DPI = 100
TITLE_SIZE = 15
FORMULA_SIZE = 13
LABEL_SIZE = 11
INDEX_SIZE = 8
#: width of a digit / minus sign in em (DejaVu Sans), for fitting numbers in cells
_CHAR_EM = 0.66


def require_matplotlib() -> Any:
    """Import matplotlib (Agg) and Pillow, or explain how to install them."""
    try:
        import matplotlib
        import PIL  # noqa: F401
    except ImportError as e:
        raise ClearConvError(
            f"clearconv.explain draws with matplotlib and Pillow ({e.name} is missing): "
            f"pip install 'clearconv[explain]'"
        ) from None
    return matplotlib


def new_figure(width: float, height: float) -> Any:
    """An Agg-backed figure of ``width`` x ``height`` inches, white background."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def axes_in(fig: Any, left: float, top: float, width: float, height: float,
            frame: bool = False) -> Any:
    """Axes placed in inches: ``left`` from the figure's left edge, ``top`` from its top."""
    fw, fh = fig.get_size_inches()
    ax = fig.add_axes((left / fw, 1 - (top + height) / fh, width / fw, height / fh))
    if not frame:
        ax.set_axis_off()
    return ax


def text_in(fig: Any, x: float, y: float, s: str, **kw: Any) -> Any:
    """Figure text at ``x`` inches from the left, ``y`` inches from the top."""
    fw, fh = fig.get_size_inches()
    kw.setdefault("ha", "center")
    kw.setdefault("va", "center")
    kw.setdefault("fontsize", LABEL_SIZE)
    return fig.text(x / fw, 1 - y / fh, s, **kw)


#: the one convention for ``*``, stated in every figure that writes it (docs/MATH.md §3)
STAR = "* is cross-correlation, as the layers compute it (docs/MATH.md §3)"


def header(fig: Any, title: str, formula: str, note: str | None = None) -> float:
    """The title (bold) and the formula line(s) at the top; returns the inches used."""
    fw, _ = fig.get_size_inches()
    text_in(fig, fw / 2, 0.32, title, fontsize=TITLE_SIZE, weight="bold")
    lines = formula.split("\n")
    y = 0.78
    for line in lines:
        text_in(fig, fw / 2, y, line, fontsize=FORMULA_SIZE)
        y += 0.38
    for line in (note or "").split("\n") if note else ():
        text_in(fig, fw / 2, y - 0.05, line, fontsize=LABEL_SIZE - 1, color="#444444",
                style="italic")
        y += 0.3
    return y + 0.05


def fmt_num(v: float, decimals: int = 2) -> str:
    """A number as short as it can be: ``3``, ``4.5``, ``-0.25`` (with a real minus)."""
    if not np.isfinite(v):
        return ""
    s = f"{v:.{decimals}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    if s in ("-0", ""):
        s = "0"
    return s.replace("-", "\u2212")


def fit_fontsize(cell_in: float, chars: int, cap: float = 14.0) -> float:
    """The font size (points) at which ``chars`` digits fit in a square cell of ``cell_in``."""
    return float(min(cap, cell_in * 72 * 0.8 / (_CHAR_EM * max(chars, 1))))


def max_chars(values: np.ndarray, decimals: int) -> int:
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    return max((len(fmt_num(v, decimals)) for v in finite.ravel()), default=1)


def sym_limit(*arrays: np.ndarray) -> float:
    """The symmetric colour limit ``max |a|`` over arrays (1 when all are zero)."""
    m = max((float(np.nanmax(np.abs(a))) if np.size(a) else 0.0) for a in arrays)
    return m if m > 0 else 1.0


def _text_color(rgba: Sequence[float]) -> str:
    r, g, b = rgba[:3]
    return "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black"


@dataclass
class MatrixView:
    """A matrix drawn cell by cell with its numbers; :meth:`update` redraws it (GIFs)."""

    ax: Any
    image: Any
    texts: list[list[Any]] | None
    cmap: Any
    norm: Any
    decimals: int
    grid: Any = None

    def artists(self) -> list[Any]:
        """Everything that changes when the values change (for GIF blitting)."""
        out = [self.image, self.grid, *self.ax.spines.values()]
        return out + [t for row in (self.texts or []) for t in row]

    def update(self, values: np.ndarray, shown: np.ndarray | None = None) -> None:
        """New values; cells where ``shown`` is False are blank (no colour, no number)."""
        v = np.asarray(values, dtype=float)
        masked = np.ma.masked_array(v, mask=None if shown is None else ~shown)
        self.image.set_data(masked)
        if self.texts is None:
            return
        for r, row in enumerate(self.texts):
            for c, t in enumerate(row):
                visible = shown is None or bool(shown[r, c])
                t.set_visible(visible)
                if visible:
                    t.set_text(fmt_num(v[r, c], self.decimals))
                    t.set_color(_text_color(self.cmap(self.norm(v[r, c]))))


def matrix(ax: Any, values: np.ndarray, cmap: str, vmin: float, vmax: float, *,
           cell_in: float, decimals: int = 2, numbers: bool = True,
           title: str | None = None, row_labels: Sequence[Any] | None = None,
           col_labels: Sequence[Any] | None = None, fontsize: float | None = None,
           chars: int | None = None, shown: np.ndarray | None = None,
           title_size: float = LABEL_SIZE) -> MatrixView:
    """Draw ``values`` (2-D) as coloured cells with their numbers and a thin grid.

    ``ax`` should be ``values.shape[1] * cell_in`` by ``values.shape[0] * cell_in``
    inches (see :func:`axes_in`); ``row_labels``/``col_labels`` are written as small
    indices on the left and on top (None: 0..n-1; [] for none).
    """
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    v = np.asarray(values, dtype=float)
    rows, cols = v.shape
    cm = colormaps[cmap].with_extremes(bad="white")
    norm = Normalize(vmin=vmin, vmax=vmax)
    img = ax.imshow(np.ma.masked_invalid(v), cmap=cm, norm=norm, interpolation="nearest",
                    extent=(-0.5, cols - 0.5, rows - 0.5, -0.5))
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_axis_on()
    for side in ax.spines.values():
        side.set_linewidth(1.2)
    ax.set_xticks(np.arange(cols))
    ax.set_yticks(np.arange(rows))
    ax.xaxis.tick_top()
    ax.tick_params(length=0, labelsize=INDEX_SIZE, labelcolor="#666666", pad=2)
    ax.set_xticklabels([] if col_labels == [] else
                       [str(c) for c in (col_labels if col_labels is not None else range(cols))])
    ax.set_yticklabels([] if row_labels == [] else
                       [str(r) for r in (row_labels if row_labels is not None else range(rows))])
    segments = [[(c - 0.5, -0.5), (c - 0.5, rows - 0.5)] for c in range(1, cols)]
    segments += [[(-0.5, r - 0.5), (cols - 0.5, r - 0.5)] for r in range(1, rows)]
    grid = LineCollection(segments, colors="#9a9a9a", linewidths=0.6, zorder=1)
    ax.add_collection(grid)
    if title:
        ax.set_title(title, fontsize=title_size, pad=16 if col_labels != [] else 6)
    texts = None
    if numbers:
        n_chars = chars if chars is not None else max_chars(v, decimals)
        size = fontsize if fontsize is not None else fit_fontsize(cell_in, n_chars)
        texts = [[ax.text(c, r, "", ha="center", va="center", fontsize=size)
                  for c in range(cols)] for r in range(rows)]
    view = MatrixView(ax, img, texts, cm, norm, decimals, grid)
    view.update(v, shown)
    return view


def outline(ax: Any, row: float, col: float, height: float, width: float,
            color: str = FOCUS, lw: float = 3.5, **kw: Any) -> Any:
    """A rectangle around cells ``[row, row + height) x [col, col + width)``."""
    from matplotlib.patches import Rectangle

    rect = Rectangle((col - 0.5, row - 0.5), width, height, fill=False, edgecolor=color,
                     linewidth=lw, zorder=5, **kw)
    ax.add_patch(rect)
    return rect


def shade_padding(ax: Any, shape: tuple[int, int], pads: tuple[tuple[int, int], tuple[int, int]]
                  ) -> None:
    """Hatch the zero-padding border of a padded matrix of ``shape``."""
    from matplotlib.patches import Rectangle

    (pt, pb), (pl, pr) = pads
    h, w = shape
    for r in range(h):
        for c in range(w):
            if r < pt or r >= h - pb or c < pl or c >= w - pr:
                ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor=PAD_FACE,
                                       edgecolor="#9a9a9a", hatch="///", linewidth=0.6,
                                       zorder=1.5, alpha=0.9))


def operator(fig: Any, x: float, y: float, s: str, size: float = 22) -> Any:
    """A big operator symbol (``*``, ``=``, ``+``, an arrow) between two matrices."""
    return text_in(fig, x, y, s, fontsize=size, color="#333333")


def save_png(fig: Any, path: Path) -> Path:
    """Write ``fig`` as a PNG (no timestamp in the metadata: the bytes are reproducible),
    atomically: ``path`` is the old file or the whole new one, never a truncated one."""
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=DPI, facecolor="white", metadata={"Software": None})
    return path


def render(fig: Any) -> Any:
    """The figure's canvas as a Pillow RGB image (after it was drawn)."""
    from PIL import Image

    canvas = fig.canvas
    w, h = canvas.get_width_height()
    return Image.frombuffer("RGBA", (w, h), bytes(canvas.buffer_rgba()), "raw", "RGBA",
                            0, 1).convert("RGB")


def _palette(frames: list[Any]) -> np.ndarray:
    """One GIF palette for all frames, (256, 3) uint8: the 160 most frequent colours of the
    first and last frames exactly (white, flat fills, the colour-map cells), plus 96
    median-cut colours for the anti-aliased rest."""
    from PIL import Image

    both = Image.new("RGB", (frames[0].width, frames[0].height * 2))
    both.paste(frames[0], (0, 0))
    both.paste(frames[-1], (0, frames[0].height))
    counted = sorted(both.getcolors(maxcolors=1 << 24), key=lambda c: (-c[0], c[1]))
    exact = [rgb for _, rgb in counted[:160]]
    rest = both.quantize(colors=96, method=Image.Quantize.MEDIANCUT,
                         dither=Image.Dither.NONE).getpalette()[:96 * 3]
    flat = [v for rgb in exact for v in rgb] + list(rest)
    flat += [255] * (768 - len(flat))
    return np.array(flat, dtype=np.uint8).reshape(256, 3)


class _Indexer:
    """Maps RGB frames to palette indices by exact nearest colour, remembering each colour
    it has seen (Pillow's own mapping is approximate: it turns white into 252 grey)."""

    def __init__(self, palette: np.ndarray) -> None:
        self.palette = palette.astype(np.int32)
        self.lut = np.zeros(1 << 24, np.uint8)
        self.known = np.zeros(1 << 24, bool)

    def __call__(self, frame: Any) -> Any:
        from PIL import Image

        rgb = np.asarray(frame, dtype=np.uint32)
        packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        new = np.unique(packed[~self.known[packed]])
        if new.size:
            cols = np.stack([(new >> 16) & 255, (new >> 8) & 255, new & 255], -1)
            d = ((cols[:, None, :].astype(np.int32) - self.palette[None]) ** 2).sum(-1)
            self.lut[new] = d.argmin(axis=1)
            self.known[new] = True
        img = Image.fromarray(self.lut[packed], mode="P")
        img.putpalette(self.palette.astype(np.uint8).ravel().tolist())
        return img


def save_gif(fig: Any, path: Path, n_frames: int, draw_frame: Callable[[int], None],
             dynamic: Sequence[Any], frame_ms: int = 800, last_ms: int = 3000) -> int:
    """Write an animated GIF of ``n_frames``: ``draw_frame(t)`` updates the figure for frame t.

    Only the ``dynamic`` artists change between frames: the rest is drawn once by Agg
    and restored for every frame (blitting), then the dynamic artists are drawn on it in
    z-order. Frames share one palette (see :func:`_palette`) and are written by Pillow
    without dithering; the last frame is held ``last_ms``. Returns the frame count.
    """
    canvas = fig.canvas
    dynamic = sorted(dynamic, key=lambda a: a.get_zorder())
    for artist in dynamic:
        artist.set_animated(True)
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    frames = []
    for t in range(n_frames):
        draw_frame(t)
        canvas.restore_region(background)
        for artist in dynamic:
            if artist.get_visible():
                (artist.axes or fig).draw_artist(artist)
        frames.append(render(fig))
    indexer = _Indexer(_palette(frames))
    quantized = [indexer(f) for f in frames]
    durations = [frame_ms] * (n_frames - 1) + [last_ms]
    with atomic_write(path) as f:   # the old GIF or the whole new one, never truncated
        quantized[0].save(f, format="GIF", save_all=True, append_images=quantized[1:],
                          duration=durations, loop=0, optimize=False, disposal=1)
    return n_frames


def matrix_at(fig: Any, left: float, top: float, values: np.ndarray, cmap: str, vmin: float,
              vmax: float, cell_in: float, **kw: Any) -> MatrixView:
    """:func:`matrix` in new axes whose top-left corner is at (``left``, ``top``) inches."""
    rows, cols = np.shape(values)
    ax = axes_in(fig, left, top, cols * cell_in, rows * cell_in, frame=True)
    return matrix(ax, values, cmap, vmin, vmax, cell_in=cell_in, **kw)


def kernel_fraction(k: np.ndarray) -> tuple[np.ndarray, int]:
    """``k`` as integers over a common denominator d (``k = ints / d``), d = 1 if integral."""
    for d in (1, 2, 3, 4, 5, 8, 9, 10, 16, 25, 32, 64, 100, 256):
        ints = k * d
        if np.allclose(ints, np.round(ints), atol=1e-9):
            return np.round(ints), d
    return k, 1
