#!/usr/bin/env python3
"""Quality-cost plots from a `vml-filter bench` run.

    python3 benches/plot_bench.py RUN_DIR OUT_PREFIX [TASK ...]

For each task (and σ_y) in RUN_DIR/results.csv, one PNG with two panels: mean PSNR against
mean wall time, and against network passes (forwards + VJPs). Specs of one method are
joined by a line in order of cost, so a sweep reads as a curve. Needs matplotlib
(`make bench-plots` installs it into the venv).
"""
import sys
from collections import defaultdict

import bench_rows

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def means(path):
    out = defaultdict(list)
    for (task, sy, spec), rows in bench_rows.groups(path).items():
        n = len(rows)
        out[(task, sy)].append(
            {
                "name": rows[0]["method_name"],
                "spec": spec,
                "psnr": sum(float(r["psnr"]) for r in rows) / n,
                "wall": sum(float(r["wall_s"]) for r in rows) / n,
                "passes": sum(int(r["forwards"]) + int(r["vjps"]) for r in rows) / n,
            }
        )
    return out


def plot(points, title, path):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    by_method = defaultdict(list)
    for p in points:
        by_method[p["name"]].append(p)
    for ax, key, label in (
        (axes[0], "wall", "wall time per image (s)"),
        (axes[1], "passes", "network passes per image (forwards + VJPs)"),
    ):
        for name, pts in sorted(by_method.items()):
            pts = sorted(pts, key=lambda p: p[key])
            xs = [max(p[key], 1e-3) for p in pts]
            ys = [p["psnr"] for p in pts]
            if name == "classical":
                ax.axhline(ys[0], color="gray", linestyle=":", label="classical")
                continue
            ax.plot(xs, ys, marker="o", label=name)
            for p, x, y in zip(pts, xs, ys):
                budget = p["spec"].split(":", 1)[1] if ":" in p["spec"] else ""
                if budget:
                    ax.annotate(budget, (x, y), fontsize=7, xytext=(3, 3),
                                textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("PSNR (dB)")
        ax.grid(True, alpha=0.3)
    axes[1].legend(fontsize=8, loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(path)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    run, prefix, tasks = sys.argv[1], sys.argv[2], set(sys.argv[3:])
    for (task, sy), points in sorted(means(f"{run}/results.csv").items()):
        if tasks and task not in tasks:
            continue
        plot(points, f"{task}, σ_y = {sy:g}", f"{prefix}-{task}-sy{sy:g}.png")


if __name__ == "__main__":
    main()
