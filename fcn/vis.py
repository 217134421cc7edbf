"""Colour maps and label visualisation: the PASCAL VOC palette, P-mode label images, overlays.

Pure NumPy + Pillow; nothing here touches Caffe.

The VOC colour map is *computed*, not pasted: index ``i`` is spread over the three channels
three bits at a time, most significant output bit first (bit 0 of ``i`` -> bit 7 of red,
bit 1 -> bit 7 of green, bit 2 -> bit 7 of blue, bit 3 -> bit 6 of red, ...). This is the rule
of the VOC development kit's ``VOClabelcolormap.m``. It maps the 256 indices to 256 distinct
colours, so the same palette serves any number of classes up to 256: the "generated palette"
for more than 21 classes is simply more entries of this rule. Index 0 is black, 1 is
(128, 0, 0), 15 (person) is (192, 128, 128) and 255 (VOC's border / ignore label) is
(224, 224, 192).

Example::

    >>> import numpy as np, vis
    >>> label = np.array([[0, 1], [15, 255]], dtype=np.uint8)
    >>> vis.colorize(label)[1, 1].tolist()
    [224, 224, 192]
    >>> vis.label_to_pil(label).mode
    'P'
"""
import numpy as np

__all__ = ['PALETTE_SIZE', 'voc_palette', 'palette', 'label_to_pil', 'colorize', 'overlay',
           'legend', 'overlay_with_legend']

PALETTE_SIZE = 256  # the most entries a P-mode (8-bit) image can have


def voc_palette(n=PALETTE_SIZE):
    """Return the first ``n`` colours (1 <= n <= 256) of the PASCAL VOC colour map.

    Returns a ``(n, 3)`` uint8 array of RGB rows; row ``i`` is the colour of label ``i``.
    Computed with the VOC bit-interleaving rule (see the module docstring); all rows differ.
    """
    n = int(n)
    if not 1 <= n <= PALETTE_SIZE:
        raise ValueError(f"a VOC palette has 1 to {PALETTE_SIZE} entries, not {n}")
    index = np.arange(n, dtype=np.int64)
    rgb = np.zeros((n, 3), dtype=np.int64)
    for bit in range(8):  # 8 rounds of 3 bits each cover any 8-bit index (loop over bits)
        shift = 7 - bit
        for channel in range(3):
            rgb[:, channel] |= ((index >> (3 * bit + channel)) & 1) << shift
    return rgb.astype(np.uint8)


def palette(num_classes):
    """Return a ``(num_classes, 3)`` uint8 palette for ``num_classes`` labels (1..256).

    For any count this is the VOC colour map (so 21 classes get exactly VOC's colours); above 21
    the further entries come from the same bit rule, which gives every index its own colour.
    More than 256 classes cannot be stored in a P-mode PNG and raise ``ValueError``.
    """
    return voc_palette(num_classes)


def _full_palette(pal):
    """``pal`` (k x 3, k <= 256) extended to 256 rows with the VOC rule; validated, uint8."""
    if pal is None:
        return voc_palette()
    pal = np.asarray(pal)
    if pal.ndim != 2 or pal.shape[1] != 3 or not 1 <= pal.shape[0] <= PALETTE_SIZE:
        raise ValueError(f"a palette is a (k, 3) array with 1 <= k <= {PALETTE_SIZE}, "
                         f"not shape {pal.shape}")
    if pal.dtype != np.uint8:
        if not np.issubdtype(pal.dtype, np.integer) or pal.min() < 0 or pal.max() > 255:
            raise ValueError("palette entries must be integers in [0, 255]")
        pal = pal.astype(np.uint8)
    full = voc_palette()
    full[:len(pal)] = pal
    return full


def _check_label(label):
    """A 2-D integer label with values in [0, 255], as an array (not copied when possible)."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"a label image is 2-D (H, W), not shape {label.shape}")
    if not (np.issubdtype(label.dtype, np.integer) or label.dtype == np.bool_):
        raise ValueError(f"label values must be integers, not {label.dtype}")
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError(f"label values must lie in [0, 255] to be drawn with a palette; "
                         f"found {int(label.min())}..{int(label.max())}")
    return label


def label_to_pil(label, palette=None):
    """Return ``label`` (H, W) of integers in [0, 255] as a P-mode ``PIL.Image`` (W x H).

    ``palette`` is a (k, 3) array (k <= 256; default: the full VOC palette); entries k..255 are
    filled with the VOC rule, so e.g. the ignore value 255 keeps VOC's (224, 224, 192). Pixel
    values are stored unchanged: ``np.array(label_to_pil(x)) == x``.
    """
    from PIL import Image

    label = _check_label(label)
    image = Image.fromarray(np.ascontiguousarray(label, dtype=np.uint8))  # mode 'L'
    image.putpalette(_full_palette(palette).ravel().tolist())  # 'L' + palette -> 'P'
    return image


def colorize(label, palette=None):
    """Return the (H, W, 3) uint8 RGB picture of ``label`` (H, W) under ``palette``.

    ``palette`` as for ``label_to_pil`` (default: VOC). One table lookup, no per-pixel loop.
    """
    label = _check_label(label)
    return _full_palette(palette)[label]  # (H, W) -> (H, W, 3)


def overlay(image_rgb, label, alpha=0.5, ignore=255, palette=None):
    """Blend the colours of ``label`` over ``image_rgb``; return an (H, W, 3) uint8 array.

    ``out = round((1 - alpha) * image + alpha * colour(label))`` per channel, except where
    ``label == ignore`` (None: nowhere), where the image is kept unchanged. ``image_rgb`` is
    (H, W, 3) (or (H, W) grey, or (H, W, 4) whose alpha channel is dropped) with values in
    [0, 255]; ``label`` is (H, W); ``0 <= alpha <= 1``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], not {alpha}")
    image = np.asarray(image_rgb)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)  # (H, W) -> (H, W, 3)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"an image is (H, W, 3) RGB, not shape {np.asarray(image_rgb).shape}")
    label = _check_label(label)
    if label.shape != image.shape[:2]:
        raise ValueError(f"label shape {label.shape} differs from image shape {image.shape[:2]}")
    colours = _full_palette(palette)[label].astype(np.float64)
    blended = np.rint((1.0 - alpha) * image.astype(np.float64) + alpha * colours)
    if ignore is not None:
        keep = label == ignore
        blended[keep] = image[keep]
    return np.clip(blended, 0, 255).astype(np.uint8)


LEGEND_ROW = 14      # pixels per legend line (a 10 px swatch and the default bitmap font)


def legend(label, class_names, palette=None, height=None, ignore=255):
    """The (h, w, 3) uint8 legend of the classes present in ``label``: one line per class
    index found (ascending, ``ignore`` left out), a colour swatch of ``palette`` and
    ``index name``; ``h`` is at least ``height``. ``class_names[i]`` names index ``i`` (an
    index beyond the list is shown by its number)."""
    from PIL import Image, ImageDraw, ImageFont

    label = _check_label(label)
    pal = _full_palette(palette)
    present = [int(i) for i in np.unique(label) if ignore is None or i != ignore]
    texts = [f"{i} {class_names[i]}" if i < len(class_names) else str(i) for i in present]
    font = ImageFont.load_default()
    draw_probe = ImageDraw.Draw(Image.new('RGB', (1, 1)))
    text_w = max([int(draw_probe.textlength(t, font=font)) for t in texts] + [0])
    width = 10 + 4 + text_w + 8
    rows_h = 4 + LEGEND_ROW * len(texts)
    image = Image.new('RGB', (width, max(rows_h, height or 0)), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for row, (i, text) in enumerate(zip(present, texts)):
        y = 4 + row * LEGEND_ROW
        draw.rectangle([4, y, 13, y + 9], fill=tuple(int(c) for c in pal[i]), outline=(0, 0, 0))
        draw.text((18, y - 1), text, fill=(0, 0, 0), font=font)
    return np.asarray(image, dtype=np.uint8)


def overlay_with_legend(image_rgb, label, class_names=None, palette=None, alpha=0.5,
                        ignore=255):
    """``overlay(image_rgb, label)`` with, when ``class_names`` are given, the ``legend`` of
    the classes present drawn beside it on the right (white below the shorter of the two);
    without names, the overlay alone. Returns an (H', W + legend width, 3) uint8 array."""
    blended = overlay(image_rgb, label, alpha=alpha, ignore=ignore, palette=palette)
    if not class_names:
        return blended
    panel = legend(label, class_names, palette, blended.shape[0], ignore)
    height = max(blended.shape[0], panel.shape[0])
    out = np.full((height, blended.shape[1] + panel.shape[1], 3), 255, dtype=np.uint8)
    out[:blended.shape[0], :blended.shape[1]] = blended
    out[:panel.shape[0], blended.shape[1]:] = panel
    return out
