#!/usr/bin/env bash
# Assembles the training pack of the default model from Debian packages of photographs
# and the sample photos inside the scikit-image wheel. See models/default/DATA.md.
#
#   models/default/make-data.sh            # pack lands in $VML_DATA_DIR/pack
#
# Everything lives in a cache directory outside git:
#   VML_DATA_DIR (default: ${XDG_CACHE_HOME:-$HOME/.cache}/vml-filter/data)
#     debs/      the downloaded .deb files         (apt-get download, no root install)
#     root/      their extracted contents          (dpkg -x)
#     wheel/     the scikit-image wheel and its skimage/data/ folder
#     pyenv/     a small venv with Pillow for decoding and resizing
#     pack/      the result: train/*.png, val/*.png, manifest.json
#
# Needs: apt-get, dpkg, python3 (with venv), unzip or python's zipfile, and package
# registry access the first time; reruns reuse what is already in the cache.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${VML_DATA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vml-filter/data}"
short_side="${VML_DATA_SHORT_SIDE:-384}"
skimage_version="0.26.0"
packages=(mate-backgrounds plasma-workspace-wallpapers lomiri-wallpapers lomiri-wallpapers-16.04
          lomiri-wallpapers-20.04 lxqt-themes)

mkdir -p "$cache/debs" "$cache/root" "$cache/wheel"
echo "data cache: $cache" >&2

# 1. Debian packages: download only (works without installing anything).
missing=()
for p in "${packages[@]}"; do
    compgen -G "$cache/debs/${p}_*.deb" >/dev/null || missing+=("$p")
done
if ((${#missing[@]})); then
    if ! (cd "$cache/debs" && apt-get download "${missing[@]}"); then
        # Fresh machines have no package lists yet; refreshing them needs root.
        echo "apt-get download failed; refreshing the package lists and retrying" >&2
        apt-get update
        (cd "$cache/debs" && apt-get download "${missing[@]}")
    fi
fi
for p in "${packages[@]}"; do
    for deb in "$cache/debs/${p}"_*.deb; do
        dpkg -x "$deb" "$cache/root"
    done
done

# 2. Pillow in a private venv (the project's venv stays torch + numpy only).
if [ ! -x "$cache/pyenv/bin/python" ] || ! "$cache/pyenv/bin/python" -c 'import PIL' 2>/dev/null; then
    python3 -m venv "$cache/pyenv"
    "$cache/pyenv/bin/pip" install --quiet pillow
fi

# 3. scikit-image wheel: only its bundled sample images are used, the code is never run.
if ! compgen -G "$cache/wheel/scikit_image-${skimage_version}-*.whl" >/dev/null; then
    "$cache/pyenv/bin/pip" download --quiet --no-deps --only-binary=:all: \
        --dest "$cache/wheel" "scikit-image==${skimage_version}"
fi
"$cache/pyenv/bin/python" - "$cache/wheel" <<'EOF'
import glob, sys, zipfile
dest = sys.argv[1]
wheel = sorted(glob.glob(f"{dest}/scikit_image-*.whl"))[-1]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith("skimage/data/") and name.endswith((".png", ".jpg")):
            z.extract(name, dest)
EOF

# 4. Select, decode, resize and split.
"$cache/pyenv/bin/python" "$here/prepare_data.py" \
    --debs "$cache/debs" --root "$cache/root" --skimage "$cache/wheel/skimage/data" \
    --out "$cache/pack" --short-side "$short_side"
