#!/usr/bin/env python3
"""Denoising PSNR of a model on the validation photos, one network evaluation per image.

For each noise level σ (on the [-1, 1] pixel scale) and each photo of pack/val/: y = x₀ + σ n
with a fixed seed; the timestep t whose ᾱ_t is closest to 1/(1 + σ²) (the DDPM step whose
noise-to-signal ratio is σ); the network's ε at x_t = √ᾱ_t · y; and the one-step posterior
mean x̂₀ = y − σ_t ε (Tweedie). Prints PSNR of y and of x̂₀ against x₀, per photo and on
average, as JSON. Uses `vml-filter eval-net`, so it measures the shipped Rust code path.

    python eval_denoise.py --bin target/release/vml-filter --model models/default/model.safetensors \
        --pack ~/.cache/vml-filter/data/pack [--sigmas 0.05 0.1 0.2]

Needs numpy and Pillow (make-data.sh's venv has Pillow; add numpy to it).
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image


def alphas_cumprod():
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    return np.cumprod(1.0 - betas)


def psnr(a, b):
    # Peak-to-peak 2 on the [-1, 1] scale, i.e. the usual PSNR of 8-bit images.
    mse = float(np.mean((a - b) ** 2))
    return 10.0 * np.log10(4.0 / mse)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--arch", default=None)
    ap.add_argument("--pack", required=True)
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    ap.add_argument("--multiple", type=int, default=8)
    args = ap.parse_args()

    ab = alphas_cumprod()
    files = sorted(glob.glob(os.path.join(args.pack, "val", "*.png")))
    if not files:
        sys.exit(f"no validation photos in {args.pack}/val")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for si, sigma in enumerate(args.sigmas):
            t = int(np.argmin(np.abs(ab - 1.0 / (1.0 + sigma**2))))
            sigma_t = float(np.sqrt((1.0 - ab[t]) / ab[t]))
            rows = []
            for fi, path in enumerate(files):
                img = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 127.5 - 1.0
                m = args.multiple
                h, w = img.shape[0] // m * m, img.shape[1] // m * m
                x0 = img[:h, :w].transpose(2, 0, 1)[None].copy()
                rng = np.random.default_rng(1000 * si + fi)
                y = (x0 + sigma * rng.standard_normal(x0.shape)).astype(np.float32)
                inp, out = os.path.join(tmp, "in.npy"), os.path.join(tmp, "out.npy")
                np.save(inp, (np.sqrt(ab[t]) * y).astype(np.float32))
                cmd = [args.bin, "eval-net", "--model", args.model, "--input", inp,
                       "--timestep", str(t), "--output", out, "--device", "cpu"]
                if args.arch:
                    cmd += ["--arch", args.arch]
                subprocess.run(cmd, check=True)
                eps = np.load(out)[:, :3]
                x0_hat = np.clip(y - sigma_t * eps, -1.0, 1.0)
                rows.append({"photo": os.path.basename(path)[:-4],
                             "psnr_noisy": round(psnr(np.clip(y, -1, 1), x0), 3),
                             "psnr_denoised": round(psnr(x0_hat, x0), 3)})
            results[str(sigma)] = {
                "timestep": t,
                "sigma_t": round(sigma_t, 5),
                "mean_psnr_noisy": round(float(np.mean([r["psnr_noisy"] for r in rows])), 3),
                "mean_psnr_denoised": round(float(np.mean([r["psnr_denoised"] for r in rows])), 3),
                "photos": rows,
            }
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
