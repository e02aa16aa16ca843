#!/usr/bin/env bash
# Everything this project checks and measures on a CUDA GPU, as one timed script, for a
# machine that has the GPU but no Rust toolchain: binaries built elsewhere come in an archive
# and LibTorch comes from the machine's own PyTorch (same version, 2.11).
#
#   tests/gpu/pack.sh                       # on the build machine: .dev/gpu-bin.tar.xz, .dev/pack
#   OUT=/some/dir BUDGET=570 tests/gpu/device-run.sh   # on the GPU machine, from the repo root
#
# Stages (each under its own time limit; a failing stage is logged and the next one runs):
#   1. CUDA tests: tests/cuda.rs with VML_REQUIRE_CUDA=1, the closed-form MAP tests on CUDA.
#   2. ffhq-256-shaped network (random weights: time and memory do not depend on them):
#      each method at 256², fp32 and fp16, with the GPU's memory sampled by nvidia-smi.
#   3. Serve mode: images per second, one process answering N requests, against N processes.
#   4. Training the default model from models/default/resume on the GPU, for the time left.
#   5. Quality against cost with the freshly trained weights: VML-MAP and DPS sweeps on the
#      validation photos at 256².
# Results land in $OUT as at most 8 files (the device tool's limit): results.tar.gz and the
# training state split in parts of 15 MiB.
set -u
T0=$SECONDS
STAGES=${STAGES:-tests,ffhq,serve,train,quality}
want() { [[ ",$STAGES," == *",$1,"* ]]; }
BUDGET=${BUDGET:-570}
OUT=${OUT:?set OUT}
R=/tmp/gpu-results
mkdir -p "$R"
ROOT=$PWD
log() { echo "[$((SECONDS - T0)) s] $*" | tee -a "$R/log.txt"; }
left() { echo $((BUDGET - (SECONDS - T0))); }
stage() { # stage NAME SECONDS COMMAND... : runs with a time limit, logs its outcome
    local name=$1 limit=$2
    shift 2
    log "stage $name (limit ${limit} s)"
    timeout --signal=INT --kill-after=15 "$limit" "$@" >>"$R/$name.log" 2>&1
    log "stage $name: exit $?"
}
# Samples the GPU's used memory every 100 ms into FILE until the stage ends.
smi_start() { nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader,nounits -lms 100 >"$1" 2>/dev/null & SMI=$!; }
smi_stop() { kill "$SMI" 2>/dev/null; wait "$SMI" 2>/dev/null; }
finish() {
    log "packing results"
    cp -r /tmp/run/loss.csv /tmp/run/val.csv /tmp/run/ema.safetensors /tmp/run/config.json "$R/" 2>/dev/null
    tar -czf "$OUT/results.tar.gz" -C /tmp gpu-results
    if [ -f /tmp/run/state.safetensors ]; then
        split -b 15M -d /tmp/run/state.safetensors "$OUT/state.part"
        sha256sum /tmp/run/state.safetensors >"$OUT/state.sha256"
    fi
    ls -la "$OUT"
}
trap finish EXIT

# 0. Binaries where their compiled-in paths expect them, LibTorch from this machine.
log "machine: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader)"
nvidia-smi >"$R/nvidia-smi.txt" 2>&1
TORCH_LIB=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH=$TORCH_LIB
BUILD_ROOT=$(cat .dev/build-root)
if [ "$BUILD_ROOT" != "$ROOT" ] && [ ! -e "$BUILD_ROOT" ]; then
    mkdir -p "$(dirname "$BUILD_ROOT")" && ln -s "$ROOT" "$BUILD_ROOT"
fi
tar -xJf .dev/gpu-bin.tar.xz -C "$ROOT" 2>/dev/null ||
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' .dev/gpu-bin.tar.xz "$ROOT"
BIN=$ROOT/target/release/vml-filter
export VML_DATA_DIR=$ROOT/.dev
if ! "$BIN" --version >>"$R/log.txt" 2>&1; then
    log "the binary does not start:"; ldd "$BIN" | tee -a "$R/log.txt"; exit 1
fi
python3 -c 'import torch; print("python torch", torch.__version__, torch.version.cuda)' >>"$R/log.txt" 2>&1

# 1. CUDA tests.
want tests && stage cuda-tests 100 env VML_REQUIRE_CUDA=1 "$ROOT"/target/release/deps/cuda --test-threads=1 --nocapture
want tests && stage gaussian-map-cuda 60 env VML_TEST_DEVICE=cuda "$ROOT"/target/release/deps/gaussian_map --test-threads=4

# 2. The ffhq-256-shaped network: time and memory per method, fp32 and fp16.
want ffhq && "$ROOT"/target/release/examples/random_checkpoint ffhq-256 /tmp/ffhq >>"$R/log.txt" 2>&1
mkdir -p /tmp/one && cp "$ROOT/.dev/pack/val/lomiri-aitzgorri.png" /tmp/one/
want ffhq && for p in fp16 fp32; do
    smi_start "$R/smi-ffhq-$p.csv"
    stage "ffhq-$p" 70 "$BIN" bench --images /tmp/one --out "$R/ffhq-$p" --size 256 \
        --tasks sr:4 --sigma-y 0.01 --model /tmp/ffhq/model.safetensors --device cuda \
        --precision "$p" --methods ddrm:5,vml-map,vml-map-pre,ddrm,pigdm,dps
    smi_stop
done
# Peak GPU memory of one VML-MAP restore (256² output) in its own process.
python3 -c 'from PIL import Image; Image.open("/tmp/one/lomiri-aitzgorri.png").convert("RGB").resize((64, 64)).save("/tmp/low64.png")'
want ffhq && for p in fp32 fp16; do
    smi_start "$R/smi-vml-map-$p.csv"
    stage "vml-map-memory-$p" 40 "$BIN" --sr 4 --model /tmp/ffhq/model.safetensors --device cuda \
        --precision "$p" --steps 10 --iters 3 -i /tmp/low64.png -o "/tmp/ffhq-$p.png"
    smi_stop
done

# 3. Serve mode: N requests in one process against N processes (default model, SR ×4 to 256²).
python3 - <<'EOF'
import json
img = open("/tmp/low64.png", "rb").read()
with open("/tmp/requests.bin", "wb") as f:
    for i in range(4):
        head = {"vml": 1, "task": {"kind": "sr", "scale": 4}, "image": {"bytes": len(img)},
                "options": {"device": "cuda", "seed": i, "sigma_y": 0.01}}
        f.write((json.dumps(head) + "\n").encode() + img)
EOF
serve_test() {
    local t=$SECONDS
    "$BIN" serve </tmp/requests.bin >/tmp/responses.bin || return 1
    echo "serve: 4 requests in $((SECONDS - t)) s"
    t=$SECONDS
    for i in 0 1 2 3; do
        "$BIN" --sr 4 --device cuda --seed $i --sigma-y 0.01 -i /tmp/low64.png -o /tmp/s$i.png || return 1
    done
    echo "4 processes: $((SECONDS - t)) s"
}
want serve && stage serve 45 bash -c "$(declare -f serve_test); BIN=$BIN; TIMEFORMAT=%R; time serve_test"

# 4. Training, with what is left minus the quality stage's share.
rm -rf /tmp/run && cp -r "$ROOT/models/default/resume" /tmp/run
TRAIN_S=$(( $(left) - $(want quality && echo 190 || echo 15) ))
if want train && [ "$TRAIN_S" -gt 60 ]; then
    stage train $((TRAIN_S + 40)) "$BIN" train --out /tmp/run --resume --device cuda \
        --data "$ROOT/.dev/pack" --batch 64 --crop 128 --log-every 50 \
        --checkpoint-minutes 1.5 --minutes "$(python3 -c "print($TRAIN_S / 60)")"
fi
MODEL=/tmp/run/ema.safetensors
[ -f "$MODEL" ] || MODEL=$ROOT/models/default/model.safetensors

# 5. Quality against cost on the validation photos at 256², the new weights.
Q=$(( $(left) - 15 ))
if want quality && [ "$Q" -gt 20 ]; then
    stage quality "$Q" "$BIN" bench --images "$ROOT/.dev/pack/val" --out "$R/quality" --size 256 \
        --tasks sr:4,gauss:3,box --sigma-y 0.01 --model "$MODEL" --device cuda \
        --methods classical,vml-map:10x3,vml-map:20x3,vml-map,vml-map-pre,ddrm,pigdm,dps:100,dps:250,dps:1000
fi
log "done"
