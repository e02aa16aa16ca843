#!/usr/bin/env bash
# Assembles the training pack of the default model from Debian and Ubuntu packages of
# photographs and the sample photos inside the scikit-image wheel. See models/default/DATA.md.
#
#   models/default/make-data.sh            # pack lands in $VML_DATA_DIR/pack
#
# Everything lives in a cache directory outside git:
#   VML_DATA_DIR (default: ${XDG_CACHE_HOME:-$HOME/.cache}/vml-filter/data)
#     apt/       a private apt configuration (sources, lists, cache); the system's is untouched
#     debs/      the downloaded .deb files         (apt-get download, no root install)
#     root/PKG/  their extracted contents, one folder per package (dpkg -x)
#     tools/     debootstrap and ubuntu-keyring, extracted (mirror name and archive key)
#     wheel/     the scikit-image wheel and its skimage/data/ folder
#     pyenv/     a small venv with Pillow for decoding and resizing
#     pack/      the result: train/*.png, val/*.png, manifest.json
#
# Every package is pinned to an exact version and the SHA-256 of its .deb (the list below);
# every source image is pinned by the SHA-256 of its bytes (sources.sha256 beside this
# script). A version that has left the archive, or a file that differs, stops the script
# with a message naming it. The pack is checked against the standard evaluation images
# (../shared/eval/MANIFEST.tsv beside the repository, or $VML_EVAL_MANIFEST) and is not
# written if any source image matches one.
#
# Needs: apt-get, dpkg, python3 (with venv), and package archive access the first time;
# reruns reuse what is already in the cache. Mirrors: the Debian mirror this machine's
# apt already uses (or $VML_DEBIAN_MIRROR), and the Ubuntu mirror debootstrap uses by
# default (or $VML_UBUNTU_MIRROR).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${VML_DATA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vml-filter/data}"
short_side="${VML_DATA_SHORT_SIDE:-384}"
eval_manifest="${VML_EVAL_MANIFEST:-$repo/../shared/eval/MANIFEST.tsv}"
skimage_version="0.26.0"
pillow_version="13.0.0"

# package  version  sha256-of-the-.deb  (suite it comes from, for the reader)
pins="
mate-backgrounds 1.26.0-1 7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04 debian/bookworm
plasma-workspace-wallpapers 4:5.27.5-2 32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b debian/bookworm
lomiri-wallpapers 20.04.0-2 6b75961132a2035f9c4db79f725a7290092619c5c8f672071c84cb5b10898e07 debian/bookworm
lomiri-wallpapers-16.04 20.04.0-2 a99ff6a3bfe451e4cc0682ecb3cc82e71740626d59e4845ae34a0a0e45421eab debian/bookworm
lomiri-wallpapers-20.04 20.04.0-2 d44e89b8473aafe64a5b678f014862dc31335aaaf18665c544d985d854f1a709 debian/bookworm
lxqt-themes 1.2.0-1 d518df36b515b09d36cb00b12645dd8ce170bb82bb0966297741905ce3edc8e1 debian/bookworm
budgie-backgrounds 3.0-1 b91c2d5209558bc11d8d3a161f22a608857e3f8c735980cfab0d6650b03014ca debian/trixie
ubuntu-wallpapers-karmic 24.04.2 9c3753798ed94910e258cad4cd44fddbdacc419d157163c55151fe99ade8a2d6 ubuntu/noble
ubuntu-wallpapers-lucid 24.04.2 60d9eb9106db3625aaf0ff5ccb5435ba4af2b36be5177b5539a7322544729bbb ubuntu/noble
ubuntu-wallpapers-maverick 24.04.2 fe156343bb8c137cd9c60944c966797c0398a69f44b530c48f3ee1cd221a71cc ubuntu/noble
ubuntu-wallpapers-natty 24.04.2 b847e9ae336c052e6886b9c6a6ea705f9573a05d424e3a5245f7e4e2c3c0eef1 ubuntu/noble
ubuntu-wallpapers-oneiric 24.04.2 a093acbd96e5a6a5548ee222488fb6cb847db4c907d7d03022f68504354af47e ubuntu/noble
ubuntu-wallpapers-precise 24.04.2 8334c9f850fe81b177f1da4b48e01e91ad4e050bedace3eed80b1a57cf969a99 ubuntu/noble
ubuntu-wallpapers-quantal 24.04.2 72d26debbb5399e0d85162274d3f1801cce6ba2dc1aaf65a019d537a503ee915 ubuntu/noble
ubuntu-wallpapers-raring 24.04.2 bb2b51bd5782cba5a59bc9ac35fa6e2d489ce54765c6f96c93a10febb728a444 ubuntu/noble
ubuntu-wallpapers-saucy 24.04.2 b073e529ed5692331070f07ed414cb9c0bc29f5d5c2fea0e12623f4af64b2965 ubuntu/noble
ubuntu-wallpapers-trusty 24.04.2 7205d50b22c798c0283fb898107a64635a0140deeb20612590bf171e8bd80c30 ubuntu/noble
ubuntu-wallpapers-utopic 24.04.2 0434146b5dbbe5e1536598e9f0c9a1c1e0eae00871bd99f1704316b0fe2bc91d ubuntu/noble
ubuntu-wallpapers-vivid 24.04.2 fc39e00513700c891c3f830af79b3f99e5fd3015f0541e4f8764b8fd826fd10b ubuntu/noble
ubuntu-wallpapers-wily 24.04.2 a9a0c7588f3b7809c56191b4bbb1eef49db309146e6b920b097da7783f88267b ubuntu/noble
ubuntu-wallpapers-xenial 24.04.2 91dd950ae93ce32307cc63efb73f5b05667535e5792ed7b69e38f869127cd3c5 ubuntu/noble
ubuntu-wallpapers-yakkety 24.04.2 d00fcdc9326cbe11d2893a45f616ac31af96ed1752eac880c069bfc27e3c2412 ubuntu/noble
ubuntu-wallpapers-zesty 24.04.2 7b7ade52a3bedb3c9073453e760f9fcd991af329897f771e66a350c969264819 ubuntu/noble
ubuntu-wallpapers-artful 24.04.2 d5cd00d651cb8b94ddcb7bc04bee6d4983bd6c2211b668d8728b93f806d0d61a ubuntu/noble
ubuntu-gnome-wallpapers-trusty 16.10.4 d685237159a651f911e1b07e3e5888bf459d3e2b83e6c521c3d7212fa0e33595 ubuntu/noble
ubuntu-mate-wallpapers-photos 24.04.0 66e1183c767e4c20594e74f7879fd91839457e0f88b2fc8d9cd9b69914628af4 ubuntu/noble
xubuntu-community-wallpapers-trusty 22.04.0 7524125f9fcdcf09275d94ef305afe0c492d407152fb15b2784de735329a7de5 ubuntu/noble
"
# Tools, not data: the Ubuntu archive key and debootstrap's table of default mirrors.
tool_pins="
ubuntu-keyring 2023.11.28.1-0.2 b2e7ed48431bf9e7978ae810bbdaf253093570d6e3f864e575b7c13554b81174 debian/trixie
debootstrap 1.0.141 8c02cb8ad712eb67afb0d23fab175c562804cc97eda70b70cb0f3bc2a21732d7 debian/trixie
"

die() { echo "make-data.sh: $*" >&2; exit 1; }

mkdir -p "$cache/debs" "$cache/root" "$cache/tools" "$cache/wheel" \
    "$cache/apt/lists/partial" "$cache/apt/cache/archives/partial" "$cache/apt/sources.list.d" \
    "$cache/apt/preferences.d"
: >"$cache/apt/status"
echo "data cache: $cache" >&2

apt_opts=(
    -o "Dir::Etc::sourcelist=$cache/apt/sources.list"
    -o "Dir::Etc::sourceparts=$cache/apt/sources.list.d"
    -o "Dir::Etc::preferences=$cache/apt/preferences"
    -o "Dir::Etc::preferencesparts=$cache/apt/preferences.d"
    -o "Dir::State::Lists=$cache/apt/lists"
    -o "Dir::State::status=$cache/apt/status"
    -o "Dir::Cache=$cache/apt/cache"
    -o "Acquire::Languages=none"
)
[ "$(id -u)" = 0 ] && apt_opts+=(-o "APT::Sandbox::User=root")

# The .deb in debs/ for PACKAGE at VERSION, if there is one.
deb_for() {
    local f
    for f in "$cache/debs/$1"_*.deb; do
        [ -e "$f" ] || continue
        [ "$(dpkg-deb -f "$f" Version)" = "$2" ] && { echo "$f"; return 0; }
    done
    return 1
}

# Downloads the pinned packages that are not in debs/ yet, then checks every one.
fetch_pins() {
    local list="$1" want=() p v sum f
    while read -r p v sum _; do
        [ -n "$p" ] || continue
        deb_for "$p" "$v" >/dev/null || want+=("$p=$v")
    done <<<"$list"
    if ((${#want[@]})); then
        apt-get "${apt_opts[@]}" update -qq >&2 || die "apt-get update failed (private lists in $cache/apt)"
        if ! (cd "$cache/debs" && apt-get "${apt_opts[@]}" download "${want[@]}" >&2); then
            die "could not download the pinned versions ${want[*]}. A version that has left the archive must be re-pinned (new version and SHA-256 here, new photo hashes in sources.sha256) after looking at its photos again."
        fi
    fi
    while read -r p v sum _; do
        [ -n "$p" ] || continue
        f="$(deb_for "$p" "$v")" || die "pinned file missing: $p $v"
        [ "$(sha256sum <"$f" | cut -c1-64)" = "$sum" ] || die "$f: SHA-256 differs from the pinned $sum"
    done <<<"$list"
}

# 1. Mirrors and the archive keys.
debian_mirror="${VML_DEBIAN_MIRROR:-}"
if [ -z "$debian_mirror" ]; then
    # The mirror this machine already uses: where its apt would fetch debootstrap from.
    uri="$(apt-get -qq --print-uris download debootstrap 2>/dev/null | head -n1 | cut -d"'" -f2)" || true
    debian_mirror="${uri%%/pool/*}"
    [ -n "$debian_mirror" ] && [ "$debian_mirror" != "$uri" ] ||
        die "cannot tell this machine's Debian mirror; set VML_DEBIAN_MIRROR"
fi
debian_key=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$debian_key" ] || die "$debian_key is missing (package debian-archive-keyring)"
cat >"$cache/apt/sources.list" <<EOF
deb [signed-by=$debian_key] $debian_mirror bookworm main
deb [signed-by=$debian_key] $debian_mirror trixie main
EOF
fetch_pins "$tool_pins"
while read -r p v _; do
    [ -n "$p" ] && dpkg -x "$(deb_for "$p" "$v")" "$cache/tools"
done <<<"$tool_pins"
ubuntu_key="$cache/tools/usr/share/keyrings/ubuntu-archive-keyring.gpg"
ubuntu_mirror="${VML_UBUNTU_MIRROR:-$(grep -o 'http://archive\.[a-z.]*/ubuntu' \
    "$cache/tools/usr/share/debootstrap/scripts/gutsy" | head -n1)}"
[ -n "$ubuntu_mirror" ] || die "cannot tell the Ubuntu mirror; set VML_UBUNTU_MIRROR"
# Only the release pocket: its packages never change after the release.
echo "deb [signed-by=$ubuntu_key] $ubuntu_mirror noble main universe" >>"$cache/apt/sources.list"

# 2. The photo packages: download only (nothing is installed), one folder per package.
fetch_pins "$pins"
while read -r p v _; do
    [ -n "$p" ] || continue
    mkdir -p "$cache/root/$p"
    dpkg -x "$(deb_for "$p" "$v")" "$cache/root/$p"
done <<<"$pins"

# 3. Pillow in a private venv (the project's venv stays torch + numpy only).
if [ ! -x "$cache/pyenv/bin/python" ] ||
    ! "$cache/pyenv/bin/python" -c "import PIL, sys; sys.exit(PIL.__version__ != '$pillow_version')" 2>/dev/null; then
    python3 -m venv "$cache/pyenv"
    "$cache/pyenv/bin/pip" install --quiet "pillow==$pillow_version"
fi

# 4. scikit-image wheel: only its bundled sample images are used, the code is never run.
if ! compgen -G "$cache/wheel/scikit_image-${skimage_version}-*.whl" >/dev/null; then
    "$cache/pyenv/bin/pip" download --quiet --no-deps --only-binary=:all: \
        --dest "$cache/wheel" "scikit-image==${skimage_version}"
fi
"$cache/pyenv/bin/python" - "$cache/wheel" "$skimage_version" <<'EOF'
import glob, sys, zipfile
dest, version = sys.argv[1], sys.argv[2]
wheel = sorted(glob.glob(f"{dest}/scikit_image-{version}-*.whl"))[-1]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith("skimage/data/") and name.endswith((".png", ".jpg")):
            z.extract(name, dest)
EOF

# 5. Select, check, decode, resize and split.
"$cache/pyenv/bin/python" "$here/prepare_data.py" \
    --debs "$cache/debs" --root "$cache/root" --skimage "$cache/wheel/skimage/data" \
    --skimage-version "$skimage_version" --lock "$here/sources.sha256" \
    --eval-manifest "$eval_manifest" --out "$cache/pack" --short-side "$short_side"
