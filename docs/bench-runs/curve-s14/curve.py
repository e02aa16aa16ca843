"""Restoration PSNR of VML-MAP (the filter's defaults) against training crops seen, from the
bench runs of this folder (one `val-STEP.csv` or `SET-STEP.csv` per checkpoint):

    python3 docs/bench-runs/curve-s14/curve.py docs/bench-runs/curve-s14/val-*.csv

Crops seen at step s, from the run's history (models/default/README.md): 16 per step (64²)
up to 2472, 64 per step (128²) from 2472 to 5834 on the GPU, 16 per step (64²) after."""
import csv
import re
import sys
from collections import defaultdict


def crops(step):
    if step <= 2472:
        return 16 * step
    if step <= 5834:
        return 16 * 2472 + 64 * (step - 2472)
    return 16 * 2472 + 64 * (5834 - 2472) + 16 * (step - 5834)


rows = []
tasks = []
for path in sys.argv[1:]:
    step = int(re.search(r"-(\d+)\.csv$", path).group(1))
    by = defaultdict(list)
    for r in csv.DictReader(open(path)):
        if r["status"] == "ok":
            by[(r["task"], r["method"])].append(float(r["psnr"]))
    for t, _ in by:
        if t not in tasks:
            tasks.append(t)
    rows.append((step, by))
rows.sort(key=lambda r: r[0])
tasks.sort()
print("| step | crops seen | " + " | ".join(f"{t} VML-MAP (classical)" for t in tasks) + " |")
print("|---:|---:|" + "---|" * len(tasks))
for step, by in rows:
    cells = []
    for t in tasks:
        v, c = by.get((t, "vml-map"), []), by.get((t, "classical"), [])
        cell = f"{sum(v) / len(v):.2f}" if v else "–"
        if c:
            cell += f" ({sum(c) / len(c):.2f})"
        cells.append(cell)
    print(f"| {step} | {crops(step):,} | " + " | ".join(cells) + " |")
