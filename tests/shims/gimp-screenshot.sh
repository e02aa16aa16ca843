#!/usr/bin/env bash
# Screenshots of the plug-in's dialog in real GIMP 3 under Xvfb (for docs/gimp.md).
#   tests/shims/gimp-screenshot.sh OUTDIR [IMAGE]   writes OUTDIR/gimp-dialog.png, gimp-window.png
#   VML_SHOT_RUN=inpaint tests/shims/gimp-screenshot.sh OUTDIR IMAGE
#       runs the task on the centre quarter instead of opening the dialog, writes gimp-after.png
#   VML_SHOT_RUN=select ...   only selects the centre quarter, writes gimp-before.png
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
w, h = img.get_width(), img.get_height()
img.select_rectangle(Gimp.ChannelOps.REPLACE, w * 3 // 8, h * 3 // 8, w // 4, h // 4)
Gimp.displays_flush()
proc = Gimp.get_pdb().lookup_procedure('plug-in-vml-restore')
cfg = proc.create_config()
cfg.set_property('image', img)
cfg.set_core_object_array('drawables', [img.get_layers()[0]])
task = os.environ.get('VML_SHOT_RUN', '')
if task == 'select':
    pass  # "before" picture: the image with its selection
elif task:
    # "After" picture: run the task, drop the selection, leave the window up.
    cfg.set_property('run-mode', Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property('task', task)
    cfg.set_property('method', os.environ.get('VML_SHOT_METHOD', 'classical'))
    proc.run(cfg)
    Gimp.Selection.none(img)
    Gimp.displays_flush()
else:
    cfg.set_property('run-mode', Gimp.RunMode.INTERACTIVE)
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
if [[ ${VML_SHOT_RUN:-} == select ]]; then
    /usr/bin/convert "$work/screen.png" -fuzz 1% -trim +repage "$dest/gimp-before.png"
    echo "wrote $dest/gimp-before.png"
elif [[ -n ${VML_SHOT_RUN:-} ]]; then
    /usr/bin/convert "$work/screen.png" -fuzz 1% -trim +repage "$dest/gimp-after.png"
    echo "wrote $dest/gimp-after.png"
else
    /usr/bin/convert "$work/screen.png" -crop 412x562+0+0 +repage "$dest/gimp-dialog.png"
    /usr/bin/convert "$work/screen.png" -fuzz 1% -trim +repage "$dest/gimp-window.png"
    echo "wrote $dest/gimp-dialog.png $dest/gimp-window.png"
fi
