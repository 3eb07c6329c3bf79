#!/usr/bin/env python3
"""Makes the hall's textures in assets/textures/ (256x256 sRGB PNG, tiling): the floor's wooden
planks and the wall's dressed stone. Made here from noise, so they are ours to share (CC0).
Their mean colours are the hall's colours; the client tints nothing. Run again after a change:
python3 scripts/textures.py
"""
import math
import os
import random
import struct
import zlib

SIZE = 256
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets", "textures")


def value_noise(seed, cells):
    """Smooth tiling noise in 0..1: a random lattice of `cells` x `cells`, cosine-interpolated."""
    rng = random.Random(seed)
    grid = [[rng.random() for _ in range(cells)] for _ in range(cells)]

    def at(x, y):
        fx, fy = x / SIZE * cells, y / SIZE * cells
        x0, y0 = int(fx) % cells, int(fy) % cells
        x1, y1 = (x0 + 1) % cells, (y0 + 1) % cells
        tx = (1 - math.cos((fx % 1) * math.pi)) / 2
        ty = (1 - math.cos((fy % 1) * math.pi)) / 2
        top = grid[y0][x0] * (1 - tx) + grid[y0][x1] * tx
        bottom = grid[y1][x0] * (1 - tx) + grid[y1][x1] * tx
        return top * (1 - ty) + bottom * ty

    return at


def write_png(name, pixel):
    rows = b"".join(
        b"\x00" + bytes(max(0, min(255, round(c))) for x in range(SIZE) for c in pixel(x, y))
        for y in range(SIZE)
    )

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", SIZE, SIZE, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(rows, 9))
    png += chunk(b"IEND", b"")
    path = os.path.join(HERE, name)
    with open(path, "wb") as f:
        f.write(png)
    print(f"{path}: {len(png) // 1024} KiB")


def floor():
    """Four planks across, each its own shade, with a long grain and staggered ends."""
    grain = value_noise(1, 8)
    fine = value_noise(2, 32)
    rng = random.Random(3)
    planks = 4
    shades = [rng.uniform(0.88, 1.12) for _ in range(planks * 2)]
    ends = [rng.randrange(SIZE) for _ in range(planks)]
    base = (112, 80, 58)

    def pixel(x, y):
        plank = x * planks // SIZE
        half = 0 if (y - ends[plank]) % SIZE < SIZE // 2 else 1
        shade = shades[plank * 2 + half]
        # Grain runs along the plank (y): stretched noise, a few soft streaks.
        streak = math.sin((x % (SIZE // planks)) * 0.35 + grain(x, y * 0.15) * 9)
        g = 1 + 0.06 * streak + 0.08 * (fine(x, y * 0.25) - 0.5)
        seam = (x % (SIZE // planks) in (0,)) or (y - ends[plank]) % (SIZE // 2) == 0
        k = shade * g * (0.72 if seam else 1.0)
        return tuple(c * k for c in base)

    write_png("floor.png", pixel)


def wall():
    """Dressed stone: staggered blocks with faint joints, a little mottling."""
    mottle = value_noise(4, 16)
    rng = random.Random(5)
    shades = [rng.uniform(0.96, 1.04) for _ in range(16)]
    base = (219, 211, 198)

    def pixel(x, y):
        row = y // 64
        shift = 64 if row % 2 else 0
        column = ((x + shift) % SIZE) // 128
        joint = y % 64 == 0 or (x + shift) % 128 == 0
        k = shades[row * 2 + column] * (1 + 0.05 * (mottle(x, y) - 0.5))
        k *= 0.88 if joint else 1.0
        return tuple(c * k for c in base)

    write_png("wall.png", pixel)


os.makedirs(HERE, exist_ok=True)
floor()
wall()
