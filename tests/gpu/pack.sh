#!/usr/bin/env bash
# Prepares what tests/gpu/device-run.sh needs on a GPU machine without a Rust toolchain:
# .dev/gpu-bin.tar.xz (the binary, the CUDA and closed-form test binaries, the
# random-checkpoint example; stripped, and compressed together since they share most of
# their code), .dev/pack (the training pack, from models/default/make-data.sh) and
# .dev/build-root (where the binaries expect the repository to be).
set -euo pipefail
cd "$(dirname "$0")/../.."
export LIBTORCH_USE_PYTORCH=1 VIRTUAL_ENV=$PWD/.venv PATH=$PWD/.venv/bin:$PATH
cargo build --release --locked --example random_checkpoint
cargo build --release --locked
msg=$(cargo test --release --locked --test cuda --test gaussian_map --no-run --message-format=json)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/target/release/deps" "$stage/target/release/examples"
for t in cuda gaussian_map; do
    exe=$(jq -r --arg t "$t" 'select(.reason == "compiler-artifact" and .target.name == $t and .executable != null) | .executable' <<<"$msg" | tail -1)
    cp "$exe" "$stage/target/release/deps/$t"
done
cp target/release/vml-filter "$stage/target/release/"
cp target/release/examples/random_checkpoint "$stage/target/release/examples/"
find "$stage" -type f -exec strip {} +
mkdir -p .dev
tar -C "$stage" -cf - target | xz -9e -T2 >.dev/gpu-bin.tar.xz
pack=${VML_DATA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vml-filter/data}/pack
rm -rf .dev/pack && cp -r "$pack" .dev/pack
pwd >.dev/build-root
du -sh .dev/gpu-bin.tar.xz .dev/pack
