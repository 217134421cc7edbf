"""A scene of simple shapes, written as SVG text or painted into a PNG with Pillow.

A ``Scene`` holds ``Group``s (one per drawn node or edge, with a CSS class, an id and a
tooltip) of ``Rect``, ``Ellipse``, ``Text`` and ``Curve`` items in pixel coordinates (y down).
``to_svg(scene)`` returns a standalone SVG document (no external resources; text in DejaVu
Sans, falling back to Verdana / sans-serif); ``to_png(scene)`` returns PNG bytes painted with
Pillow, in DejaVu Sans where the font is installed (Pillow's own font otherwise).

Text is measured with DejaVu Sans's advance widths (``text_width``), so boxes fit their labels
in both outputs without a font library at layout time.
"""
import io
import math
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

__all__ = ['Scene', 'Group', 'Rect', 'Ellipse', 'Text', 'Curve', 'text_width', 'to_svg',
           'to_png', 'FONT_FAMILY']

FONT_FAMILY = "'DejaVu Sans', Verdana, 'Bitstream Vera Sans', sans-serif"
_EXTRA = '×→·αβ'
# Advance widths (1/1000 em) of DejaVu Sans (regular, bold) for ' '..'~' and _EXTRA.
_WIDTHS = {
    False: [318, 401, 460, 838, 636, 950, 780, 275, 390, 390, 500, 838, 318, 361, 318, 337, 636,
            636, 636, 636, 636, 636, 636, 636, 636, 636, 337, 337, 838, 838, 838, 531, 1000, 684,
            686, 698, 770, 632, 575, 775, 752, 295, 295, 656, 557, 863, 748, 787, 603, 787, 695,
            635, 611, 732, 684, 989, 685, 611, 685, 390, 337, 390, 838, 500, 500, 613, 635, 550,
            635, 615, 352, 635, 634, 278, 278, 579, 278, 974, 634, 612, 635, 635, 411, 521, 392,
            634, 592, 818, 592, 592, 525, 636, 337, 636, 838, 838, 838, 318, 659, 638],
    True: [348, 456, 521, 838, 696, 1002, 872, 306, 457, 457, 523, 838, 380, 415, 380, 365, 696,
           696, 696, 696, 696, 696, 696, 696, 696, 696, 400, 400, 838, 838, 838, 580, 1000, 774,
           762, 734, 830, 683, 683, 821, 837, 372, 372, 775, 637, 995, 837, 850, 733, 850, 770,
           720, 682, 812, 774, 1103, 771, 724, 725, 457, 365, 457, 838, 500, 500, 675, 716, 593,
           716, 678, 435, 716, 712, 343, 343, 665, 343, 1042, 712, 687, 716, 716, 493, 595, 478,
           712, 652, 924, 645, 652, 582, 712, 365, 712, 838, 838, 838, 380, 687, 716]}


def text_width(text, size, bold=False):
    """Width in pixels of ``text`` set in DejaVu Sans at ``size`` pixels (unknown characters
    count as a wide letter)."""
    table = _WIDTHS[bool(bold)]
    total = 0
    for ch in text:
        code = ord(ch)
        if 32 <= code < 127:
            total += table[code - 32]
        elif ch in _EXTRA:
            total += table[95 + _EXTRA.index(ch)]
        else:
            total += 1000
    return total * size / 1000.0


@dataclass
class Rect:
    x: float
    y: float
    w: float
    h: float
    fill: str = '#ffffff'
    stroke: str = '#444444'
    rx: float = 0
    stroke_width: float = 1
    dash: bool = False


@dataclass
class Ellipse:
    cx: float
    cy: float
    rx: float
    ry: float
    fill: str = '#ffffff'
    stroke: str = '#444444'
    stroke_width: float = 1


@dataclass
class Text:
    """One line of text; ``x`` is its centre (anchor 'middle') or start ('start'), ``y`` its
    vertical centre."""
    x: float
    y: float
    text: str
    size: float = 12
    bold: bool = False
    fill: str = '#111111'
    anchor: str = 'middle'


@dataclass
class Curve:
    """A smooth line through ``points`` (cubic pieces whose tangents at every point run along
    the ``axis``: 'y' for top-to-bottom drawings, 'x' for left-to-right), with an arrow head
    at the end when ``arrow``."""
    points: list
    axis: str = 'y'
    stroke: str = '#555555'
    stroke_width: float = 1.2
    arrow: bool = True

    def pieces(self):
        """[(p0, c1, c2, p1)] cubic Bézier pieces."""
        out = []
        for (x0, y0), (x1, y1) in zip(self.points, self.points[1:]):
            if self.axis == 'y':
                d = (y1 - y0) / 2
                out.append(((x0, y0), (x0, y0 + d), (x1, y1 - d), (x1, y1)))
            else:
                d = (x1 - x0) / 2
                out.append(((x0, y0), (x0 + d, y0), (x1 - d, y1), (x1, y1)))
        return out


@dataclass
class Group:
    """Items drawn together: one node or edge. ``cls``: CSS class ('layer', 'blob', 'edge',
    ...); ``id``: unique within the scene; ``title``: a tooltip."""
    cls: str
    id: str
    items: list = field(default_factory=list)
    title: str = ''


@dataclass
class Scene:
    width: float
    height: float
    groups: list = field(default_factory=list)
    title: str = ''
    background: str = '#ffffff'


# ------------------------------------------------------------------------------------------
# SVG
def _num(v):
    return f"{v:.1f}".rstrip('0').rstrip('.')


def _svg_item(item):
    if isinstance(item, Rect):
        dash = ' stroke-dasharray="4 3"' if item.dash else ''
        return (f'<rect x="{_num(item.x)}" y="{_num(item.y)}" width="{_num(item.w)}" '
                f'height="{_num(item.h)}" rx="{_num(item.rx)}" fill="{item.fill}" '
                f'stroke="{item.stroke}" stroke-width="{_num(item.stroke_width)}"{dash}/>')
    if isinstance(item, Ellipse):
        return (f'<ellipse cx="{_num(item.cx)}" cy="{_num(item.cy)}" rx="{_num(item.rx)}" '
                f'ry="{_num(item.ry)}" fill="{item.fill}" stroke="{item.stroke}" '
                f'stroke-width="{_num(item.stroke_width)}"/>')
    if isinstance(item, Text):
        weight = ' font-weight="bold"' if item.bold else ''
        return (f'<text x="{_num(item.x)}" y="{_num(item.y)}" font-size="{_num(item.size)}" '
                f'text-anchor="{item.anchor}" dominant-baseline="central" '
                f'fill="{item.fill}"{weight}>{escape(item.text)}</text>')
    if isinstance(item, Curve):
        pieces = item.pieces()
        if not pieces:
            return ''
        d = [f"M{_num(pieces[0][0][0])},{_num(pieces[0][0][1])}"]
        for _, c1, c2, p1 in pieces:
            d.append(f"C{_num(c1[0])},{_num(c1[1])} {_num(c2[0])},{_num(c2[1])} "
                     f"{_num(p1[0])},{_num(p1[1])}")
        marker = ' marker-end="url(#arrow)"' if item.arrow else ''
        return (f'<path d="{" ".join(d)}" fill="none" stroke="{item.stroke}" '
                f'stroke-width="{_num(item.stroke_width)}"{marker}/>')
    raise TypeError(f"cannot draw {type(item).__name__}")


def to_svg(scene):
    """The scene as a standalone SVG document (a str)."""
    w, h = math.ceil(scene.width), math.ceil(scene.height)
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'viewBox="0 0 {w} {h}" font-family={quoteattr(FONT_FAMILY)}>']
    if scene.title:
        out.append(f'<title>{escape(scene.title)}</title>')
    out.append('<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" '
               'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
               '<path d="M0,1 L10,5 L0,9 z" fill="#555555"/></marker></defs>')
    out.append(f'<rect width="100%" height="100%" fill="{scene.background}"/>')
    for group in scene.groups:
        out.append(f'<g class={quoteattr(group.cls)} id={quoteattr(group.id)}>')
        if group.title:
            out.append(f'<title>{escape(group.title)}</title>')
        out.extend(s for s in (_svg_item(i) for i in group.items) if s)
        out.append('</g>')
    out.append('</svg>')
    return '\n'.join(out) + '\n'


# ------------------------------------------------------------------------------------------
# PNG
_FONT_FILES = {False: ('DejaVuSans.ttf', '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf'),
               True: ('DejaVuSans-Bold.ttf',
                      '/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf')}


def _font(size, bold, cache={}):  # noqa: B006 - a deliberate per-process font cache
    key = (round(size * 4) / 4, bold)
    if key not in cache:
        from PIL import ImageFont
        font = None
        for name in _FONT_FILES[bold]:
            try:
                font = ImageFont.truetype(name, key[0])
                break
            except OSError:
                continue
        if font is None:
            try:
                font = ImageFont.load_default(size=key[0])
            except TypeError:          # Pillow < 10.1: a fixed bitmap font
                font = ImageFont.load_default()
        cache[key] = font
    return cache[key]


def _rgb(colour):
    colour = colour.lstrip('#')
    return tuple(int(colour[i:i + 2], 16) for i in (0, 2, 4))


def _bezier(p0, c1, c2, p1, steps=16):
    pts = []
    for i in range(steps + 1):
        t = i / steps
        w = ((1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t * t, t ** 3)
        pts.append(tuple(sum(wi * p[k] for wi, p in zip(w, (p0, c1, c2, p1)))
                         for k in (0, 1)))
    return pts


def to_png(scene, scale=1.0):
    """The scene painted with Pillow, as PNG bytes (``scale`` x the SVG's pixel size)."""
    from PIL import Image, ImageDraw
    w = max(1, math.ceil(scene.width * scale))
    h = max(1, math.ceil(scene.height * scale))
    image = Image.new('RGB', (w, h), _rgb(scene.background))
    draw = ImageDraw.Draw(image)
    s = scale
    for group in scene.groups:
        for item in group.items:
            if isinstance(item, Rect):
                box = [item.x * s, item.y * s, (item.x + item.w) * s, (item.y + item.h) * s]
                width = max(1, round(item.stroke_width * s))
                draw.rounded_rectangle(box, radius=item.rx * s, fill=_rgb(item.fill),
                                       outline=_rgb(item.stroke), width=width)
            elif isinstance(item, Ellipse):
                box = [(item.cx - item.rx) * s, (item.cy - item.ry) * s,
                       (item.cx + item.rx) * s, (item.cy + item.ry) * s]
                draw.ellipse(box, fill=_rgb(item.fill), outline=_rgb(item.stroke),
                             width=max(1, round(item.stroke_width * s)))
            elif isinstance(item, Text):
                anchor = 'mm' if item.anchor == 'middle' else 'lm'
                draw.text((item.x * s, item.y * s), item.text, fill=_rgb(item.fill),
                          font=_font(item.size * s, item.bold), anchor=anchor)
            elif isinstance(item, Curve):
                pts = []
                for piece in item.pieces():
                    pts.extend(_bezier(*[(x * s, y * s) for x, y in piece]))
                if len(pts) < 2:
                    continue
                colour = _rgb(item.stroke)
                draw.line(pts, fill=colour, width=max(1, round(item.stroke_width * s)),
                          joint='curve')
                if item.arrow:
                    _arrow_head(draw, pts, colour, 7 * s)
    buf = io.BytesIO()
    image.save(buf, format='PNG', optimize=True)
    return buf.getvalue()


def _arrow_head(draw, pts, colour, size):
    (x0, y0), (x1, y1) = pts[-2], pts[-1]
    angle = math.atan2(y1 - y0, x1 - x0)
    left = (x1 - size * math.cos(angle - 0.42), y1 - size * math.sin(angle - 0.42))
    right = (x1 - size * math.cos(angle + 0.42), y1 - size * math.sin(angle + 0.42))
    draw.polygon([(x1, y1), left, right], fill=colour)
