#!/usr/bin/env python3
"""Is a PNG screenshot blank? Decodes it with the standard library only (zlib) and prints JSON:
width, height, and the share of pixels that differ from the most common colour. Exit status 1
for a file that is not a PNG this script can read (8-bit RGB or RGBA, not interlaced).

Usage: png_check.py FILE
"""

import collections
import json
import struct
import sys
import zlib


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def main(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        print("not a PNG", file=sys.stderr)
        return 1
    pos = 8
    idat = b""
    width = height = None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or color not in (2, 6) or interlace:
                print(f"unsupported PNG (depth {depth}, colour {color})", file=sys.stderr)
                return 1
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    colours = collections.Counter()
    for y in range(height):
        start = y * (stride + 1)
        f = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                line[i] = (line[i] + paeth(a, b, c)) & 0xFF
        for x in range(0, stride, bpp * 4):  # every 4th pixel is enough
            colours[bytes(line[x : x + 3])] += 1
        prev = line
    total = sum(colours.values())
    background = colours.most_common(1)[0][1] if total else 0
    print(
        json.dumps(
            {
                "width": width,
                "height": height,
                "colours": len(colours),
                "non_background_share": (total - background) / total if total else 0.0,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
