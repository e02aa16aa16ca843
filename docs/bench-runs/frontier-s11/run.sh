#!/usr/bin/env bash
# Issue 20's frontier, second slice (session 11): VML-MAP with its data fit on every level
# (the new default) at three budgets beside its peers, six tasks, σ_y = 0.01 and 0.05, 128²
# centre crops of the first two photos of Kodak24 and the first of CBSD68 (time ran out for
# its second), shipped default model, two
# LibTorch threads on the 2-core CPU (a nice-19 training run beside it: read passes, not
# seconds). From the repository root:
#   bash docs/bench-runs/frontier-s11/run.sh [OUT]
set -euo pipefail
out=${1:-/tmp/frontier-s11}
bin=${VML_FILTER:-target/release/vml-filter}
methods=classical,vml-map:5x1,vml-map:10x1,vml-map:20x1
methods+=,ddrm:10,ddrm:20,diffpir:10,diffpir:20,pigdm:20,red-diff:50,red-diff:100,daps:10
# Added after the first pass (third budgets):
methods+=,ddrm:50,diffpir:50,red-diff:20,pigdm:10,daps:5
for set in Kodak24:2 CBSD68:1; do
    "$bin" bench --images "../shared/eval/${set%:*}" --out "$out/${set%:*}" --size 128 --max-images "${set#*:}" \
        --tasks sr:4,gauss:3,motion:15:45,box,random:0.7,denoise:0.1 --sigma-y 0.01,0.05 \
        --threads 2 --device cpu --resume --methods "$methods"
done
