#!/usr/bin/env bash
# Builds (once) and caches a Debian trixie root with GIMP 3, its Python bindings and
# ImageMagick 7, for the shim tests that must run the real programs.
#
#   tests/shims/trixie-root.sh            build if missing, print the root's path on stdout
#   VML_TRIXIE_ROOT=DIR tests/shims/...   cache somewhere else (default /var/cache/vml-filter/trixie)
#
# The root lives outside the repo so that reruns skip the download. A stamp file records the
# package list; changing the list rebuilds. Exit 1 with a loud message when the root cannot be
# built (not root, no debootstrap and no apt, no network to the package archive).
set -euo pipefail

ROOT=${VML_TRIXIE_ROOT:-/var/cache/vml-filter/trixie}
# gimp-python is not a separate package in trixie: the Python plug-in host (python-fu-eval)
# ships in gimp and needs python3-gi plus the GIR typelibs.
PKGS=(gimp python3-gi gir1.2-gimp-3.0 gir1.2-gimpui-3.0 gir1.2-gegl-0.4 imagemagick xauth xvfb)
STAMP_TEXT="v1 ${PKGS[*]}"
STAMP=$ROOT/.vml-root-ready

die() {
    echo "" >&2
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    echo "!! trixie-root: CANNOT BUILD THE DEBIAN TRIXIE ROOT: $*" >&2
    echo "!! The GIMP 3 / ImageMagick 7 tests cannot run and are counted FAILED." >&2
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    exit 1
}

if [[ -f $STAMP && "$(cat "$STAMP")" == "$STAMP_TEXT" ]]; then
    echo "$ROOT"
    exit 0
fi

[[ $(id -u) == 0 ]] || die "needs root (debootstrap and chroot)"

if ! command -v debootstrap >/dev/null; then
    echo "trixie-root: installing debootstrap on the host" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; } >&2 \
        || die "apt-get install debootstrap failed"
fi

# Build next to the final place and rename at the end, so an interrupted build never
# leaves a half root that looks ready.
TMP=$ROOT.partial
umount_all() {
    for m in proc sys dev/pts dev; do
        mountpoint -q "$TMP/$m" 2>/dev/null && umount -l "$TMP/$m" || true
    done
}
trap umount_all EXIT
umount_all
rm -rf "$TMP"
mkdir -p "$(dirname "$ROOT")"

echo "trixie-root: debootstrap --variant=minbase trixie $TMP (a few minutes)" >&2
t0=$SECONDS
if ! debootstrap --variant=minbase trixie "$TMP" >"$TMP.log" 2>&1; then
    tail -20 "$TMP.log" >&2
    die "debootstrap failed (log: $TMP.log)"
fi
echo "trixie-root: base done in $((SECONDS - t0)) s" >&2

mount -t proc proc "$TMP/proc"
mount --bind /dev "$TMP/dev"
mount --bind /dev/pts "$TMP/dev/pts"
mount -t sysfs sys "$TMP/sys"
cp -L /etc/resolv.conf "$TMP/etc/resolv.conf" 2>/dev/null || true
# Services must not start inside a chroot.
printf '#!/bin/sh\nexit 101\n' >"$TMP/usr/sbin/policy-rc.d"
chmod +x "$TMP/usr/sbin/policy-rc.d"

echo "trixie-root: apt-get install ${PKGS[*]}" >&2
t0=$SECONDS
if ! chroot "$TMP" /usr/bin/env DEBIAN_FRONTEND=noninteractive LC_ALL=C \
    bash -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends ${PKGS[*]} && apt-get clean" \
    >>"$TMP.log" 2>&1; then
    tail -20 "$TMP.log" >&2
    die "apt-get install in the root failed (log: $TMP.log)"
fi
echo "trixie-root: packages done in $((SECONDS - t0)) s" >&2

chroot "$TMP" gimp-console-3.0 --version >&2 || die "gimp-console-3.0 does not run in the root"
umount_all
trap - EXIT

rm -rf "$ROOT"
mv "$TMP" "$ROOT"
echo "$STAMP_TEXT" >"$STAMP"
echo "$ROOT"
