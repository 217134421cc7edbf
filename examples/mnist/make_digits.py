"""Render an MNIST-like digits set with Pillow (no download): 28x28 grayscale PNGs, a white
digit on black, each drawn with a random size, stroke width, rotation, shift and a little
noise, and the list files ``train.txt`` / ``test.txt`` (``path label`` per line) that
``npcaffe convert_imageset`` reads.

    python examples/mnist/make_digits.py OUT_DIR [--train 4000] [--test 1000] [--seed 1]

Writes OUT_DIR/digits/{train,test}/NNNNN.png and OUT_DIR/{train,test}.txt (paths relative to
OUT_DIR/, so: ``npcaffe convert_imageset --gray OUT_DIR/ OUT_DIR/train.txt train_lmdb``).
The train and test sets are drawn from the same distribution with different random numbers.
The glyphs are Pillow's bundled font (``ImageFont.load_default(size)``), so the set is the same
on every machine with the same Pillow.
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SIZE = 28


def render_digit(digit, rng, fonts):
    """One (28, 28) uint8 image of ``digit``."""
    canvas = Image.new('L', (56, 56), 0)
    draw = ImageDraw.Draw(canvas)
    font = fonts[int(rng.integers(len(fonts)))]
    stroke = int(rng.integers(0, 3))
    draw.text((28, 28), str(digit), fill=255, font=font, anchor='mm', stroke_width=stroke,
              stroke_fill=255)
    canvas = canvas.rotate(float(rng.uniform(-15, 15)), resample=Image.BILINEAR)
    box = canvas.getbbox() or (0, 0, 56, 56)
    glyph = canvas.crop(box)
    scale = 20.0 / max(glyph.size)                 # MNIST: the digit fits a 20x20 box
    glyph = glyph.resize((max(1, round(glyph.size[0] * scale)),
                          max(1, round(glyph.size[1] * scale))), Image.LANCZOS)
    out = Image.new('L', (SIZE, SIZE), 0)
    x = (SIZE - glyph.size[0]) // 2 + int(rng.integers(-2, 3))
    y = (SIZE - glyph.size[1]) // 2 + int(rng.integers(-2, 3))
    out.paste(glyph, (x, y))
    arr = np.asarray(out, np.float32) + rng.normal(0, 8, (SIZE, SIZE))
    return np.clip(arr, 0, 255).astype(np.uint8)


def write_split(out_dir, split, count, rng, fonts):
    folder = os.path.join(out_dir, 'digits', split)
    os.makedirs(folder, exist_ok=True)
    lines = []
    for i in range(count):
        digit = i % 10
        name = f"digits/{split}/{i:05d}.png"
        Image.fromarray(render_digit(digit, rng, fonts), 'L').save(os.path.join(out_dir, name))
        lines.append(f"{name} {digit}\n")
    order = rng.permutation(count)                 # list order mixed, as MNIST's
    with open(os.path.join(out_dir, f"{split}.txt"), 'w') as f:
        f.writelines(lines[j] for j in order)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('out_dir')
    parser.add_argument('--train', type=int, default=4000, help='training digits (4000)')
    parser.add_argument('--test', type=int, default=1000, help='test digits (1000)')
    parser.add_argument('--seed', type=int, default=1, help='random seed (1)')
    args = parser.parse_args(argv)
    fonts = [ImageFont.load_default(size) for size in (30, 34, 38, 42)]
    os.makedirs(args.out_dir, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    write_split(args.out_dir, 'train', args.train, rng, fonts)
    write_split(args.out_dir, 'test', args.test, rng, fonts)
    print(f"wrote {args.train} training and {args.test} test digits under {args.out_dir}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
