"""The finished rows of a `vml-filter bench` run, grouped for the scripts beside it."""
import csv


def groups(path):
    """`{(task, σ_y, method spec): [row, …]}` of the rows with status ok, in the file's order."""
    out = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if r["status"] == "ok":
                out.setdefault((r["task"], float(r["sigma_y"]), r["method"]), []).append(r)
    return out
