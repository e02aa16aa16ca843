#!/usr/bin/env bash
# Screenshots of the plug-in's dialog in real GIMP 3 under Xvfb (for docs/gimp.md).
#   tests/shims/gimp-screenshot.sh OUTDIR [IMAGE]   writes OUTDIR/gimp-dialog.png, gimp-window.png
#   VML_SHOT_RUN=inpaint tests/shims/gimp-screenshot.sh OUTDIR IMAGE
#       runs the task on the centre quarter instead of opening the dialog, writes gimp-after.png
#   VML_SHOT_RUN=select ...   only selects the centre quarter, writes gimp-before.png
#   VML_SHOT_RUN=menu ...     opens Filters > Enhance with xdotool key presses, writes gimp-menu.png
#       (installs xdotool in the trixie root the first time)
#   VML_SHOT_KEYS="KEY..." presses these keys (xdotool names) in any mode before the screenshot,
#       in the window whose title matches VML_SHOT_FOCUS (default the image window), then waits
#       VML_SHOT_DELAY seconds: e.g. VML_SHOT_FOCUS=VML-MAP VML_SHOT_KEYS=alt+o VML_SHOT_DELAY=25
#       presses the dialog's OK and shows the progress bar 25 s into the restore
# Settings for the run: VML_SHOT_SELECT=X,Y,W,H (the selection; default the centre quarter),
# VML_SHOT_METHOD (default vml-map, the plug-in's default), VML_SHOT_QUALITY (fast, normal, best;
# default fast), VML_SHOT_STEPS (0 = from the quality), VML_SHOT_SEED (default 0),
# VML_SHOT_MODEL (a model file; default empty = the default model). VML_SHOT_SAVE=FILE also saves
# the visible image (all layers merged) to FILE after the run.
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
sel = os.environ.get('VML_SHOT_SELECT', '')
x, y, sw, sh = [int(v) for v in sel.split(',')] if sel else (w * 3 // 8, h * 3 // 8, w // 4, h // 4)
img.select_rectangle(Gimp.ChannelOps.REPLACE, x, y, sw, sh)
Gimp.displays_flush()
proc = Gimp.get_pdb().lookup_procedure('plug-in-vml-restore')
cfg = proc.create_config()
cfg.set_property('image', img)
cfg.set_core_object_array('drawables', [img.get_layers()[0]])
task = os.environ.get('VML_SHOT_RUN', '')
if task in ('select', 'menu'):
    pass  # "before" picture (the image with its selection), or the menu opened from outside
elif task:
    # "After" picture: run the task, drop the selection, leave the window up.
    cfg.set_property('run-mode', Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property('task', task)
    cfg.set_property('method', os.environ.get('VML_SHOT_METHOD', 'vml-map'))
    cfg.set_property('quality', os.environ.get('VML_SHOT_QUALITY', 'fast'))
    cfg.set_property('steps', int(os.environ.get('VML_SHOT_STEPS', '0')))
    cfg.set_property('seed', int(os.environ.get('VML_SHOT_SEED', '0')))
    cfg.set_property('model', os.environ.get('VML_SHOT_MODEL', ''))
    try:
        result = proc.run(cfg)
        print('vml-shot: plug-in status', result.index(0), result.index(1), flush=True)
        Gimp.Selection.none(img)
        Gimp.displays_flush()
        if os.environ.get('VML_SHOT_RESULT'):
            merged = img.duplicate()
            merged.merge_visible_layers(Gimp.MergeType.CLIP_TO_IMAGE)
            Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, merged,
                           Gio.File.new_for_path(os.environ['VML_SHOT_RESULT']), None)
            merged.delete()
    finally:
        # The outside waits for this file, not for a fixed time: the network's run time varies.
        open(os.environ['VML_SHOT_DONE'], 'w').close()
else:
    cfg.set_property('run-mode', Gimp.RunMode.INTERACTIVE)
    proc.run(cfg)
EOS
# xdotool is not part of the test root: install it there the first time a menu is wanted.
if [[ ( ${VML_SHOT_RUN:-} == menu || -n ${VML_SHOT_KEYS:-} ) && ! -x $root/usr/bin/xdotool ]]; then
    echo "installing xdotool in $root" >&2
    chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin DEBIAN_FRONTEND=noninteractive \
        bash -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends xdotool && apt-get clean' \
        >&2 || { echo "could not install xdotool in the root" >&2; exit 1; }
fi
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
# GIMP needs about 40 s to come up in the root; a run waits for the batch script's marker file.
for i in \$(seq 1 300); do
    sleep 2
    [[ \$i -lt \${VML_SHOT_WAIT:-20} ]] && continue
    [[ -n "\${VML_SHOT_RUN:-}" && \${VML_SHOT_RUN:-} != select && \${VML_SHOT_RUN:-} != menu && ! -e "$work/done" ]] && continue
    break
done
keys="\${VML_SHOT_KEYS:-}"
[[ \${VML_SHOT_RUN:-} == menu ]] && keys="\${keys:-alt+r h}"
if [[ -n "\$keys" ]]; then
    # No window manager: give a window the keyboard focus by hand (VML_SHOT_FOCUS, a title
    # pattern; default the image window), then press the keys, e.g. the menus' mnemonics
    # (Alt+R = Filters, then H = En_hance) or Alt+O for the dialog's OK.
    win=\$(xdotool search --onlyvisible --name "\${VML_SHOT_FOCUS:-GIMP\$}" | head -1)
    xdotool windowfocus --sync "\$win" || true
    for k in \$keys; do
        xdotool key --delay 200 "\$k"
        sleep 2
    done
    sleep "\${VML_SHOT_DELAY:-0}"
fi
magick import -window root "$work/screen.png"
kill \$gimp \$xvfb 2>/dev/null
wait
EOS
# The root holds this repo but not the binary's build tree, where "default" is found otherwise:
# point the registry at this checkout's models/, so an empty model field means the shipped model.
export VML_MODELS=${VML_MODELS:-$repo/models}
result=
[[ -n ${VML_SHOT_SAVE:-} ]] && result=$work/result.png
VML_SHOT_IMG=$work/in.png VML_SHOT_DONE=$work/done VML_SHOT_RESULT=$result "$here/in-root.sh" "$root" "$bin" "$work" -- bash "$work/run.sh" >"$work/log" 2>&1 || true
[[ -n ${VML_SHOT_LOG:-} ]] && cp "$work/log" "$VML_SHOT_LOG"
if [[ ! -s $work/screen.png ]]; then
    tail -30 "$work/log" >&2
    echo "no screenshot taken" >&2
    exit 1
fi
if [[ -n $result ]]; then
    if [[ -s $result ]]; then
        cp "$result" "$VML_SHOT_SAVE" && echo "wrote $VML_SHOT_SAVE"
    else
        echo "GIMP saved no result image (log: VML_SHOT_LOG=FILE keeps it)" >&2
    fi
fi
if [[ ${VML_SHOT_RUN:-} == menu ]]; then
    /usr/bin/convert "$work/screen.png" -fuzz 1% -trim +repage "$dest/gimp-menu.png"
    echo "wrote $dest/gimp-menu.png"
elif [[ ${VML_SHOT_RUN:-} == select ]]; then
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
