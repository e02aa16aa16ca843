#!/usr/bin/env bash
# Installs the GIMP 3 plug-in "Restore with VML-MAP" for the current user and points it at a
# vml-filter binary.
#
#   plugin/install.sh                       copy; binary = target/release/vml-filter of this repo
#   plugin/install.sh --filter /path/vml-filter
#   plugin/install.sh --link                symlink the script instead (for plug-in development)
#   plugin/install.sh --dest DIR            another plug-ins folder (default: GIMP 3's, see below)
#   plugin/install.sh --uninstall
#
# GIMP 3 only loads a plug-in from a folder named like its script:
#   $XDG_CONFIG_HOME/GIMP/3.0/plug-ins/vml-restore/vml-restore.py   (executable)
# The Flatpak GIMP reads ~/.var/app/org.gimp.GIMP/config/GIMP/3.0/plug-ins instead; pass it
# with --dest (and note the Flatpak sandbox must be allowed to run the binary).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
src=$here/gimp/vml-restore/vml-restore.py
dest=${XDG_CONFIG_HOME:-$HOME/.config}/GIMP/3.0/plug-ins
filter=""
link=0
uninstall=0

while [[ $# -gt 0 ]]; do
    case $1 in
    --filter) filter=$2; shift 2 ;;
    --dest) dest=$2; shift 2 ;;
    --link) link=1; shift ;;
    --uninstall) uninstall=1; shift ;;
    -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

folder=$dest/vml-restore
if [[ $uninstall == 1 ]]; then
    rm -rf "$folder"
    echo "removed $folder"
    exit 0
fi

if [[ -z $filter ]]; then
    filter=$repo/target/release/vml-filter
fi
if [[ ! -x $filter ]]; then
    echo "install.sh: no executable vml-filter at $filter" >&2
    echo "install.sh: build it first ('make build') or pass --filter PATH" >&2
    exit 1
fi
filter=$(cd "$(dirname "$filter")" && pwd)/$(basename "$filter")

mkdir -p "$folder"
rm -f "$folder/vml-restore.py"
if [[ $link == 1 ]]; then
    ln -s "$src" "$folder/vml-restore.py"
else
    install -m 0755 "$src" "$folder/vml-restore.py"
fi
chmod +x "$src" 2>/dev/null || true
printf '%s\n' "$filter" >"$folder/vml-filter-path"

echo "installed $folder/vml-restore.py"
echo "vml-filter: $filter (recorded in $folder/vml-filter-path)"
echo "restart GIMP 3, then: Filters > Enhance > Restore with VML-MAP..."
