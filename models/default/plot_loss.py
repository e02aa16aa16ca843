#!/usr/bin/env python3
"""Draws loss.csv (training loss per logged window) and val.csv (EMA loss on the fixed
validation crops) as an SVG line chart, with the standard library only.

    python3 models/default/plot_loss.py models/default   # writes models/default/loss.svg
"""

import csv
import math
import os
import sys


def read(path, col):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [(int(r["step"]), float(r[col])) for r in csv.DictReader(f)]


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    train = read(os.path.join(d, "loss.csv"), "loss")
    val = read(os.path.join(d, "val.csv"), "val_loss_ema")
    if not train:
        sys.exit(f"no rows in {d}/loss.csv")
    W, H, L, R, T, B = 640, 360, 64, 20, 30, 44
    xs = [s for s, _ in train + val]
    ys = [v for _, v in train + val if v > 0]
    x0, x1 = 0, max(xs)
    # Log scale: the loss falls over orders of magnitude early on.
    y0 = 10 ** math.floor(math.log10(min(ys)))
    y1 = 10 ** math.ceil(math.log10(max(ys)))

    def px(s):
        return L + (W - L - R) * (s - x0) / max(x1 - x0, 1)

    def py(v):
        return T + (H - T - B) * (math.log10(y1) - math.log10(max(v, y0))) / (math.log10(y1) - math.log10(y0))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2}" y="18" text-anchor="middle">default model: ε-prediction MSE</text>',
    ]
    e = y0
    while e <= y1 * 1.0001:
        for m in (1, 2, 5):
            v = e * m
            if y0 <= v <= y1:
                y = py(v)
                out.append(f'<line x1="{L}" x2="{W - R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
                out.append(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
        e *= 10
    for i in range(6):
        s = x0 + (x1 - x0) * i / 5
        x = px(s)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{T}" y2="{H - B}" stroke="#eee"/>')
        out.append(f'<text x="{x:.1f}" y="{H - B + 16}" text-anchor="middle">{s:.0f}</text>')
    out.append(f'<text x="{(W + L) / 2}" y="{H - 8}" text-anchor="middle">training step (batch 16, 64×64 crops)</text>')
    for rows, colour, label, k in ((train, "#1f77b4", "training loss (window mean)", 0), (val, "#d62728", "validation loss, EMA weights", 1)):
        if not rows:
            continue
        pts = " ".join(f"{px(s):.1f},{py(v):.1f}" for s, v in rows)
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        if len(rows) < 40:
            out += [f'<circle cx="{px(s):.1f}" cy="{py(v):.1f}" r="2.5" fill="{colour}"/>' for s, v in rows]
        ly = T + 14 + 16 * k
        out.append(f'<line x1="{W - R - 210}" x2="{W - R - 190}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{W - R - 185}" y="{ly}">{label}</text>')
    out.append("</svg>")
    with open(os.path.join(d, "loss.svg"), "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
