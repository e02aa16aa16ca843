"""BM3D at the true σ on the clean crops of a `vml-filter bench` run, for issue 19's
denoising target ("≥ BM3D at the true σ").

    python -m venv /tmp/bm3d && /tmp/bm3d/bin/pip install bm3d==4.0.3 numpy pillow
    /tmp/bm3d/bin/python benches/bm3d_denoise.py --run RUN --sigma 0.1 \
        --bin target/release/vml-filter [--limit N]

RUN is the output folder of a bench run that had the task `denoise:SIGMA`: its images/
folder holds each photo's clean crop (`<photo>_denoise-<SIGMA>_sy<σ_y>_clean.png`). SIGMA is
on the filter's [-1, 1] scale, so the noise added here is SIGMA / 2 on [0, 1] pixels, drawn in
floating point without clipping (the usual protocol of denoising papers), and BM3D is told
that σ exactly (`bm3d_rgb`, its default colour transform and profile). The bench draws its
own noise of the same σ, so the two methods see different draws of the same distribution.

Each result is written as an 8-bit PNG under RUN/bm3d/ and scored
by `vml-filter compare` against the clean crop, the same PSNR and SSIM as the bench's rows.
Rows go to RUN/bm3d/results.csv (photo, psnr, ssim); the mean is printed.
"""
import argparse
import csv
import glob
import json
import os
import subprocess

import bm3d
import numpy as np
from PIL import Image


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="output folder of a vml-filter bench run")
    ap.add_argument("--sigma", type=float, required=True, help="σ on the [-1, 1] scale")
    ap.add_argument("--bin", default="target/release/vml-filter")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, help="first N photos only")
    args = ap.parse_args()

    label = f"denoise-{args.sigma:g}"
    cleans = sorted(glob.glob(os.path.join(args.run, "images", f"*_{label}_sy*_clean.png")))
    if not cleans:
        raise SystemExit(f"no {label} clean crops under {args.run}/images")
    cleans = cleans[: args.limit] if args.limit else cleans
    out = os.path.join(args.run, "bm3d")
    os.makedirs(out, exist_ok=True)
    sigma01 = args.sigma / 2.0
    rows = []
    for k, path in enumerate(cleans):
        photo = os.path.basename(path).split(f"_{label}_")[0]
        clean = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0
        # One generator per photo, so a subset (--limit) draws the same noise as a full run.
        rng = np.random.default_rng([args.seed, k])
        noisy = clean + rng.normal(0.0, sigma01, clean.shape)
        est = bm3d.bm3d_rgb(noisy, sigma_psd=sigma01)
        dst = os.path.join(out, f"{photo}_{label}_bm3d.png")
        Image.fromarray(np.round(np.clip(est, 0.0, 1.0) * 255.0).astype(np.uint8)).save(dst)
        score = json.loads(subprocess.check_output([args.bin, "compare", dst, path]))
        rows.append((photo, score["psnr"], score["ssim"]))
        print(f"{photo}: {score['psnr']:.2f} dB / {score['ssim']:.3f}", flush=True)
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["photo", "psnr", "ssim"])
        w.writerows(rows)
    n = len(rows)
    print(f"BM3D at σ = {args.sigma:g} ([-1, 1] scale), {n} photos: "
          f"{sum(r[1] for r in rows) / n:.2f} dB / {sum(r[2] for r in rows) / n:.3f}")


if __name__ == "__main__":
    main()
