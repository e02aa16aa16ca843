#!/usr/bin/env bash
# Issue 20's frontier, first slice (session 10): SR×4 at σ_y = 0.01 and 0.05 on 128² centre
# crops of the first two photos of Kodak24 and of CBSD68, every method at three or four
# budgets, shipped default model, two LibTorch threads. From the repository root:
#   bash docs/bench-runs/frontier-s10/run.sh [OUT]
set -euo pipefail
out=${1:-/tmp/frontier-s10}
bin=${VML_FILTER:-target/release/vml-filter}
methods=classical,vml-map:5x1,vml-map:10x1,vml-map:20x1,vml-map:50x3
methods+=,dps:50,dps:100,ddrm:10,ddrm:20,ddrm:50,pigdm:10,pigdm:20,pigdm:50
methods+=,diffpir:10,diffpir:20,diffpir:50,red-diff:20,red-diff:50,red-diff:100,daps:10,daps:20
for set in Kodak24 CBSD68; do
    "$bin" bench --images "../shared/eval/$set" --out "$out/$set" --size 128 --max-images 2 \
        --tasks sr:4 --sigma-y 0.01,0.05 --threads 2 --device cpu --resume --methods "$methods"
done
