#!/usr/bin/env bash
# Screenshots of the plug-in's dialog in real GIMP 3 under Xvfb (for docs/gimp.md).
#   tests/shims/gimp-screenshot.sh OUTDIR [IMAGE]   writes OUTDIR/gimp-dialog.png, gimp-window.png
# Xvfb runs without a window manager, so windows sit at the top left without decorations; the
# crops below fit GIMP 3.0's default layout at 1400x900.
# Uses the cached trixie root of tests/shims/trixie-root.sh; needs root.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib.sh"
repo=$(repo_root)
dest=$(realpath -m "$1")
mkdir -p "$dest"
bin=$(find_vml_filter)
root=$("$here/trixie-root.sh")
work=$(mktemp -d /tmp/vml-gimp-shot.XXXXXX)
trap 'rm -rf "$work"' EXIT
img=${2:-}
if [[ -z $img ]]; then
    /usr/bin/convert -size 480x320 plasma:tan-steelblue -seed 11 -blur 0x2 "$work/in.png"
else
    cp "$img" "$work/in.png"
fi
cat >"$work/shot.py" <<'EOS'
import os
from gi.repository import Gimp, Gio
img = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(os.environ['VML_SHOT_IMG']))
Gimp.Display.new(img)
img.select_rectangle(Gimp.ChannelOps.REPLACE, 180, 120, 120, 80)
Gimp.displays_flush()
proc = Gimp.get_pdb().lookup_procedure('plug-in-vml-restore')
cfg = proc.create_config()
cfg.set_property('run-mode', Gimp.RunMode.INTERACTIVE)
cfg.set_property('image', img)
cfg.set_core_object_array('drawables', [img.get_layers()[0]])
proc.run(cfg)
EOS
cat >"$work/run.sh" <<EOS
set -x
export HOME=$work/home DISPLAY=:77 NO_AT_BRIDGE=1 GTK_A11Y=none
mkdir -p \$HOME
bash "$repo/plugin/install.sh" --filter "$bin" >/dev/null
Xvfb :77 -screen 0 1400x900x24 -nolisten tcp &
xvfb=\$!
sleep 2
gimp-3.0 -d -f --no-splash --batch-interpreter=python-fu-eval -b "exec(open('$work/shot.py').read())" &
gimp=\$!
for i in \$(seq 1 90); do
    sleep 2
    # The dialog's title names the procedure; wait until GIMP shows it.
    if magick import -window root "$work/probe.png" 2>/dev/null && [[ \$i -ge \${VML_SHOT_WAIT:-20} ]]; then break; fi
done
magick import -window root "$work/screen.png"
kill \$gimp \$xvfb 2>/dev/null
wait
EOS
VML_SHOT_IMG=$work/in.png "$here/in-root.sh" "$root" "$bin" "$work" -- bash "$work/run.sh" >"$work/log" 2>&1 || true
[[ -n ${VML_SHOT_LOG:-} ]] && cp "$work/log" "$VML_SHOT_LOG"
if [[ ! -s $work/screen.png ]]; then
    tail -30 "$work/log" >&2
    echo "no screenshot taken" >&2
    exit 1
fi
/usr/bin/convert "$work/screen.png" -crop 412x562+0+0 +repage "$dest/gimp-dialog.png"
/usr/bin/convert "$work/screen.png" -crop 950x606+0+0 +repage "$dest/gimp-window.png"
echo "wrote $dest/gimp-dialog.png $dest/gimp-window.png"
