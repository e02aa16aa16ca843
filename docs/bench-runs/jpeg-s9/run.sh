#!/usr/bin/env bash
# JPEG artefact removal on Kodak24: 256x256 centre crops, saved by ImageMagick 6 (libjpeg's
# standard tables, 4:2:0) at quality Q, restored with `--jpeg auto` (the file's own tables),
# scored against the crop. Prints CSV: image,quality,preset,psnr_jpeg,ssim_jpeg,psnr_vml,ssim_vml,seconds.
#   docs/bench-runs/jpeg-s9/run.sh EVAL_DIR "10 20" fast [N_IMAGES] > results.csv
set -euo pipefail
eval_dir=$1 qualities=$2 preset=$3 n=${4:-24}
bin=${VML_FILTER:-target/release/vml-filter}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "image,quality,preset,psnr_jpeg,ssim_jpeg,psnr_vml,ssim_vml,seconds"
for f in $(ls "$eval_dir"/kodim*.png | sort | head -n "$n"); do
    name=$(basename "$f" .png)
    /usr/bin/convert "$f" -gravity center -crop 256x256+0+0 +repage "PNG24:$tmp/crop.png"
    for q in $qualities; do
        /usr/bin/convert "$tmp/crop.png" -quality "$q" -sampling-factor 2x2 "$tmp/q.jpg"
        /usr/bin/convert "$tmp/q.jpg" "PNG24:$tmp/q.png"
        t0=$(date +%s.%N)
        "$bin" --jpeg auto --method vml-map --quality "$preset" --device cpu --seed 0 -q \
            -i "$tmp/q.jpg" -o "$tmp/out.png"
        t1=$(date +%s.%N)
        j=$("$bin" compare "$tmp/q.png" "$tmp/crop.png")
        v=$("$bin" compare "$tmp/out.png" "$tmp/crop.png")
        python3 - "$name" "$q" "$preset" "$j" "$v" "$t0" "$t1" <<'PY'
import json, sys
n, q, p, j, v, t0, t1 = sys.argv[1:]
j, v = json.loads(j), json.loads(v)
print(f"{n},{q},{p},{j['psnr']:.3f},{j['ssim']:.4f},{v['psnr']:.3f},{v['ssim']:.4f},{float(t1) - float(t0):.1f}")
PY
    done
done
