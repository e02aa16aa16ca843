"""Markdown table of a `vml-filter bench` run across its σ_y levels: one row per task and
method, PSNR dB / SSIM at each σ_y, and the method's network passes and mean wall time.

    python benches/grid_table.py RUN/results.csv > table.md

Cells are means over the photos that finished; a method whose photo count differs between
cells is marked with the count, so a partial run cannot pass for a complete one.
"""
import sys

import bench_rows


def main(path):
    cells = bench_rows.groups(path)
    tasks, methods, levels = [], [], []
    for task, sigma_y, method in cells:
        for seen, v in ((tasks, task), (methods, method), (levels, sigma_y)):
            if v not in seen:
                seen.append(v)
    levels.sort()
    head = " | ".join(f"σ_y = {s:g}" for s in levels)
    print(f"| task | method | {head} | fwd / VJP | wall s |")
    print("|---|---|" + "---|" * len(levels) + "---:|---:|")
    for t in tasks:
        for m in methods:
            got = [cells.get((t, s, m), []) for s in levels]
            if not any(got):
                continue
            counts = {len(g) for g in got if g}
            out = []
            for g in got:
                if not g:
                    out.append("–")
                    continue
                psnr = sum(float(r["psnr"]) for r in g) / len(g)
                ssim = sum(float(r["ssim"]) for r in g) / len(g)
                mark = f" ({len(g)})" if len(counts) > 1 else ""
                out.append(f"{psnr:.2f} / {ssim:.3f}{mark}")
            every = [r for g in got for r in g]
            wall = sum(float(r["wall_s"]) for r in every) / len(every)
            passes = f"{every[0]['forwards']} / {every[0]['vjps']}"
            print(f"| {t} | {m} | " + " | ".join(out) + f" | {passes} | {wall:.1f} |")


if __name__ == "__main__":
    main(sys.argv[1])
