#!/usr/bin/env bash
# Issue 20 point 4: end-to-end CPU time of a 256² restore (SR×4 from 64², σ_y = 0.01) on two
# LibTorch threads, idle and beside one busy neighbour (`yes`), per VML-MAP budget or preset.
# Pauses (SIGSTOP) this machine's own background work first: a training run and any bench.
#   vml-filter degrade --sr 4 --sigma-y 0.01 -i CLEAN256.png -o LOW64.png
#   bash docs/bench-runs/speed-s11/run.sh LOW64.png CLEAN256.png "--quality fast|--steps 10 --iters 1|…"
# Each line: mode, budget, seconds, PSNR/SSIM of the output against CLEAN256.
set -euo pipefail
bin=${VML_FILTER:-target/release/vml-filter}
low=$1 clean=$2
IFS='|' read -r -a budgets <<< "$3"
paused=$(pgrep -f "vml-train train|vml-filter bench" || true)
[ -n "$paused" ] && kill -STOP $paused
trap '[ -n "$paused" ] && kill -CONT $paused' EXIT
for mode in idle busy; do
    [ $mode = busy ] && { yes > /dev/null & y=$!; }
    for b in "${budgets[@]}"; do
        s=$(date +%s.%N)
        # shellcheck disable=SC2086
        "$bin" --sr 4 --sigma-y 0.01 --threads 2 $b -q -i "$low" -o /tmp/speed-out.png
        e=$(date +%s.%N)
        echo "$mode | $b | $(echo "$e - $s" | bc | cut -c1-6) s | $("$bin" compare /tmp/speed-out.png "$clean")"
    done
    [ $mode = busy ] && kill $y
done
