#!/usr/bin/env bash
# Runs a command inside the cached Debian trixie root (tests/shims/trixie-root.sh), in a private
# mount namespace so every mount disappears with the command.
#
#   tests/shims/in-root.sh ROOT BIN [DIR...] -- CMD [ARG...]
#
# Bind-mounted at their own absolute paths: this repo, BIN's folder, the folders of the libraries
# BIN loads from outside the system folders (the venv's LibTorch: BIN finds them by its RUNPATH,
# so the paths must not move), $VIRTUAL_ENV, and each DIR. The command gets a clean environment:
# HOME (=$VML_ROOT_HOME or /root), PATH, LANG, OMP_NUM_THREADS and every VML_* variable.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

if [[ ${1:-} == --inner ]]; then
    shift
    root=$1
    shift
    mounts=()
    while [[ $1 != -- ]]; do mounts+=("$1"); shift; done
    shift
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    for p in "${mounts[@]}"; do
        [[ -e $p ]] || continue
        mkdir -p "$root$p"
        mount --bind "$p" "$root$p"
    done
    envs=(HOME="${VML_ROOT_HOME:-/root}" LANG=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin
        OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}")
    while IFS= read -r line; do envs+=("$line"); done < <(env | grep '^VML_' || true)
    exec chroot "$root" /usr/bin/env -i "${envs[@]}" "$@"
fi

root=$1 bin=$2
shift 2
dirs=()
while [[ $# -gt 0 && $1 != -- ]]; do dirs+=("$1"); shift; done
[[ ${1:-} == -- ]] || { echo "usage: in-root.sh ROOT BIN [DIR...] -- CMD..." >&2; exit 2; }
shift

mounts=("$repo" "$(dirname "$bin")")
[[ -n ${VIRTUAL_ENV:-} ]] && mounts+=("$VIRTUAL_ENV")
while IFS= read -r d; do mounts+=("$d"); done < <(
    ldd "$bin" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | xargs -r -n1 dirname |
        grep -vE '^/(usr/)?lib(32|64|x32)?(/|$)' | sort -u)
mounts+=("${dirs[@]}")
exec unshare --mount --propagation private -- bash "$0" --inner "$root" "${mounts[@]}" -- "$@"
