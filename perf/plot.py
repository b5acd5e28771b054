#!/usr/bin/env python3
"""perf/plot.py RESULTS.json OUT.png: rate (Mpps) against flow count (log scale)
from latest.json's rate_by_flows, NAT client->server (blue) and server->client
(orange). Standard library only (zlib + struct): no plotting package to install.
Tick labels use a 3x5 pixel font for digits and the few letters needed."""
import json
import math
import struct
import sys
import zlib

W, H = 640, 400
L, R, T, B = 70, 20, 30, 50  # margins

FONT = {  # 3x5, rows top to bottom, bits left to right
    "0": ["111", "101", "101", "101", "111"], "1": ["010", "110", "010", "010", "111"],
    "2": ["111", "001", "111", "100", "111"], "3": ["111", "001", "111", "001", "111"],
    "4": ["101", "101", "111", "001", "001"], "5": ["111", "100", "111", "001", "111"],
    "6": ["111", "100", "111", "101", "111"], "7": ["111", "001", "010", "010", "010"],
    "8": ["111", "101", "111", "101", "111"], "9": ["111", "101", "111", "001", "111"],
    "k": ["100", "101", "110", "101", "101"], "M": ["101", "111", "111", "101", "101"],
    ".": ["000", "000", "000", "000", "010"], " ": ["000", "000", "000", "000", "000"],
    "p": ["111", "101", "111", "100", "100"], "s": ["011", "100", "010", "001", "110"],
    "f": ["011", "100", "110", "100", "100"], "l": ["100", "100", "100", "100", "111"],
    "o": ["000", "111", "101", "101", "111"], "w": ["000", "101", "101", "111", "111"],
}


def main():
    src, out = sys.argv[1], sys.argv[2]
    rows = json.load(open(src)).get("rate_by_flows", [])
    if not rows:
        sys.exit("perf/plot.py: no rate_by_flows in " + src)
    px = [[(255, 255, 255)] * W for _ in range(H)]

    def put(x, y, c):
        if 0 <= x < W and 0 <= y < H:
            px[y][x] = c

    def line(x0, y0, x1, y1, c, thick=1):
        n = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in range(n + 1):
            x, y = round(x0 + (x1 - x0) * i / n), round(y0 + (y1 - y0) * i / n)
            for dx in range(-(thick // 2), thick // 2 + 1):
                for dy in range(-(thick // 2), thick // 2 + 1):
                    put(x + dx, y + dy, c)

    def text(x, y, s, c=(0, 0, 0), scale=2):
        for ch in s:
            for r, bits in enumerate(FONT.get(ch, FONT[" "])):
                for col, b in enumerate(bits):
                    if b == "1":
                        for sx in range(scale):
                            for sy in range(scale):
                                put(x + col * scale + sx, y + r * scale + sy, c)
            x += 4 * scale

    flows = [r["flows"] for r in rows]
    series = [([r["nat_in_ns"] for r in rows], (31, 119, 180)), ([r["nat_out_ns"] for r in rows], (255, 127, 14))]
    mpps = [[1e3 / v if v and v == v else 0 for v in s] for s, _ in series]
    ymax = max(1.0, math.ceil(max(max(m) for m in mpps) / 2) * 2)
    lx0, lx1 = math.log10(min(flows)), math.log10(max(flows))
    lx1 = lx1 if lx1 > lx0 else lx0 + 1

    def X(f):
        return round(L + (math.log10(f) - lx0) / (lx1 - lx0) * (W - L - R))

    def Y(v):
        return round(H - B - v / ymax * (H - T - B))

    grey = (200, 200, 200)
    for i in range(0, int(ymax) + 1, 2):
        line(L, Y(i), W - R, Y(i), grey)
        text(L - 12 - 8 * len(str(i)), Y(i) - 5, str(i))
    for f in flows:
        line(X(f), T, X(f), H - B, grey)
        label = f"{f // 1_000_000}M" if f >= 1_000_000 else f"{f // 1000}k" if f >= 1000 else str(f)
        text(X(f) - 4 * len(label), H - B + 10, label)
    line(L, H - B, W - R, H - B, (0, 0, 0))
    line(L, T, L, H - B, (0, 0, 0))
    text(L, 8, "Mpps")
    text(W - R - 8 * 5, H - 18, "flows")
    for (_, colour), m in zip(series, mpps):
        pts = [(X(f), Y(v)) for f, v in zip(flows, m)]
        for a, b in zip(pts, pts[1:]):
            line(a[0], a[1], b[0], b[1], colour, thick=3)
        for x, y in pts:
            for dx in range(-3, 4):
                for dy in range(-3, 4):
                    put(x + dx, y + dy, colour)

    raw = b"".join(b"\x00" + bytes(v for p in row for v in p) for row in px)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    open(out, "wb").write(png)
    print(f"perf/plot.py: {out} (blue: NAT client->server, orange: server->client)")


if __name__ == "__main__":
    main()
