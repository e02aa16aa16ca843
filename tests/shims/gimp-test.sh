#!/usr/bin/env bash
# Real-GIMP test of the "Restore with VML-MAP" plug-in.
#
# Builds (once, cached in /var/cache/vml-filter/trixie) a Debian trixie root with GIMP 3, then in
# a private mount namespace bind-mounts this repo, the vml-filter binary's libraries (the venv's
# LibTorch, at the same absolute paths) and a scratch folder into it, installs the plug-in with
# plugin/install.sh and runs gimp-console-3.0 headless with tests/shims/gimp_batch.py, which calls
# the procedure through the PDB. The checks on the saved images run here, with ImageMagick.
#
#   tests/shims/gimp-test.sh                 (needs root; VML_FILTER=... to test another binary)
#   VML_TEST_METHOD=vml-map tests/shims/...  use the network instead of the classical method
#
# When the root cannot be built the test FAILS, loudly: it never passes without running GIMP.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
repo=$(repo_root)

# --- outside ---------------------------------------------------------------------------------
T0=$SECONDS
echo "# GIMP 3 plug-in test (real gimp-console-3.0 in a Debian trixie root)"

if [[ $(id -u) != 0 ]]; then
    fail "gimp-test needs root (debootstrap, chroot, mounts)"
    finish
fi
bin=$(find_vml_filter) || { fail "vml-filter binary present"; finish; }
ensure_imagemagick || { fail "ImageMagick on the host"; finish; }
IM_COMPARE=/usr/bin/compare
IM=/usr/bin/convert

t=$SECONDS
root=$("$here/trixie-root.sh") || {
    fail "Debian trixie root with GIMP 3 could not be built (see the message above)"
    finish
}
echo "# trixie root ready in $((SECONDS - t)) s: $root"

# The binary lookup (argument, $VML_FILTER, installed path, PATH) with GIMP's Python bindings,
# without starting GIMP: quick, and covers the orders the GIMP runs below do not reach.
check "binary lookup: argument, \$VML_FILTER, installed path, PATH; wrong paths are errors" \
    "$here/in-root.sh" "$root" "$bin" -- python3 "$here/find_filter_check.py" \
    "$repo/plugin/gimp/vml-restore/vml-restore.py"

out=$(mktemp -d /tmp/vml-gimp-test.XXXXXX)
trap 'rm -rf "$out"' EXIT
[[ -n ${VML_TEST_KEEP:-} ]] && trap 'echo "kept $out"' EXIT

# A test picture with structure everywhere (so restoration changes pixels) and a white "scratch"
# inside the rectangle the test selects.
export VML_TEST_SEL=40,24,24,16
$IM -size 96x64 plasma:red-blue -seed 3 -blur 0x1 -fill white -draw "rectangle 44,28 59,35" \
    -type TrueColor -depth 8 "PNG24:$out/in.png"

# A JPEG as a phone stores it: the rows of a 96x64 picture with EXIF orientation 6 (shown
# turned a quarter clockwise, 64x96). The APP1 block goes in by hand, as in im-test.sh.
$IM "$out/in.png" -quality 30 -sampling-factor 2x2 "$out/turned-plain.jpg"
{ printf '\xff\xd8\xff\xe1\x00\x22Exif\x00\x00II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00\x00\x00\x00\x00\x00\x00'
  tail -c +3 "$out/turned-plain.jpg"; } >"$out/turned.jpg"
# vml-filter behind a wrapper that logs each request header the plug-in sends.
cat >"$out/logging-filter.sh" <<EOS
#!/bin/bash
IFS= read -r header
printf '%s\n' "\$header" >>"$out/headers.log"
{ printf '%s\n' "\$header"; exec cat; } | exec "$bin" "\$@"
EOS
chmod +x "$out/logging-filter.sh"
export VML_TEST_TURNED=$out/turned.jpg VML_TEST_LOGGING_FILTER=$out/logging-filter.sh \
    VML_TEST_PLUGIN=$repo/plugin/gimp/vml-restore/vml-restore.py

# Inside the root: install the plug-in as a user would, check that the binary runs there (its
# libraries come from the bind-mounted venv), then run GIMP headless on the batch script.
cat >"$out/run.sh" <<EOS
PS4='+ \$(date +%T.%N | cut -c1-12) '
set -x
bash "$repo/plugin/install.sh" --filter "$bin" || exit 1
"$bin" --version </dev/null || exit 1
timeout 300 gimp-console-3.0 -i -d -f --no-splash --batch-interpreter=python-fu-eval \\
    -b "exec(open('$repo/tests/shims/gimp_batch.py').read())" --quit
echo "gimp-console-3.0 exit \$?"
EOS
# GIMP's first start in a fresh profile queries all ~150 bundled plug-ins (about 25 s); keep a
# profile made once in the root and start each run from a copy (GIMP then queries only ours).
# (Same LANG as the runs: GIMP queries everything again when the language changes.)
tmpl=$root/var/lib/vml-gimp-profile
if [[ ! -d $tmpl/.config/GIMP ]]; then
    t=$SECONDS
    rm -rf "$tmpl.partial" && mkdir -p "$tmpl.partial"
    chroot "$root" /usr/bin/env -i HOME=/var/lib/vml-gimp-profile.partial PATH=/usr/bin:/bin LANG=C.UTF-8 \
        gimp-console-3.0 -i -d -f --batch-interpreter=python-fu-eval -b pass --quit >/dev/null 2>&1
    rm -rf "$tmpl" && mv "$tmpl.partial" "$tmpl"
    echo "# GIMP profile made in $((SECONDS - t)) s (cached in $tmpl)"
fi
mkdir -p "$out/home"
cp -a "$tmpl/." "$out/home/"
t=$SECONDS
VML_ROOT_HOME=$out/home VML_TEST_OUT=$out VML_TEST_IMG=$out/in.png \
    VML_TEST_METHOD=${VML_TEST_METHOD:-classical} VML_TEST_ONLY=${VML_TEST_ONLY:-} \
    "$here/in-root.sh" "$root" "$bin" "$out" -- bash "$out/run.sh" >"$out/gimp.log" 2>&1
echo "# gimp-console run took $((SECONDS - t)) s"
grep -E "vml-restore|Traceback|Error|error|exit" "$out/gimp.log" | head -20 | sed 's/^/  log| /'

res=$out/results.json
if [[ ! -s $res ]]; then
    fail "GIMP ran the batch script" "no results.json"
    sed 's/^/  log| /' "$out/gimp.log" | tail -40
    finish
fi
pass "GIMP ran the batch script"

# jq-free reading of results.json.
r() { python3 -c "import json,sys; d=json.load(open('$res')); v=d
for k in sys.argv[1:]:
    v = v[int(k)] if isinstance(v, list) else v.get(k) if isinstance(v, dict) else None
print(json.dumps(v) if isinstance(v,(list,dict)) else v)" "$@"; }

show_case() {
    local e
    e=$(r "$1" exception)
    [[ $e != None ]] && echo "$e" | sed 's/^/       | /'
    [[ $(r "$1" message) != "" && $(r "$1" message) != None ]] && echo "       | message: $(r "$1" message)"
}

[[ $(r done) == True ]] && pass "batch script completed" || fail "batch script completed"

# Region helpers: the selection, blacked out / cropped, for "outside unchanged, inside changed".
IFS=, read -r sx sy sw sh <<<"$VML_TEST_SEL"
outside_equal() {
    local a=$out/a.png b=$out/b.png
    $IM "$1" -alpha off -fill black -draw "rectangle $sx,$sy $((sx + sw - 1)),$((sy + sh - 1))" "$a"
    $IM "$2" -alpha off -fill black -draw "rectangle $sx,$sy $((sx + sw - 1)),$((sy + sh - 1))" "$b"
    [[ $(pixels_differ "$a" "$b") == 0 ]]
}
inside_changed() {
    local a=$out/a.png b=$out/b.png n
    $IM "$1" -alpha off -crop "${sw}x${sh}+${sx}+${sy}" +repage "$a"
    $IM "$2" -alpha off -crop "${sw}x${sh}+${sx}+${sy}" +repage "$b"
    n=$(pixels_differ "$a" "$b")
    echo "changed pixels inside: $n of $((sw * sh))"
    [[ $n =~ ^[0-9]+$ && $n -gt $((sw * sh / 4)) ]]
}
size_is() { [[ $($IM "$1" -format "%wx%h" info:) == "$2" ]]; }

# registration: the menu item a user looks for
[[ $(r registration menu_paths) == *'<Image>/Filters/Enhance'* && $(r registration menu_label) == 'Restore with VML-MAP...' ]] &&
    pass "menu: Filters > Enhance > Restore with VML-MAP..." ||
    { fail "menu: Filters > Enhance > Restore with VML-MAP..." "$(r registration menu_paths) $(r registration menu_label)"; show_case registration; }
[[ $(r registration image_types) == 'RGB*, GRAY*' ]] && pass "menu: enabled on RGB* and GRAY* layers" ||
    fail "menu: enabled on RGB* and GRAY* layers" "$(r registration image_types)"

# inpaint
if [[ $(r inpaint status) == success ]]; then pass "inpaint: PDB call succeeded"; else
    fail "inpaint: PDB call succeeded" "$(r inpaint status)"; show_case inpaint; fi
[[ $(r inpaint layers 0 0) == inpaint && $(r inpaint layers | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))') == 2 ]] &&
    pass "inpaint: new layer 'inpaint' on top, original kept" ||
    fail "inpaint: new layer 'inpaint' on top, original kept" "layers=$(r inpaint layers)"
check "inpaint: image size unchanged (96x64)" size_is "$out/inpaint.png" 96x64
check "inpaint: pixels outside the selection unchanged" outside_equal "$out/in.png" "$out/inpaint.png"
check "inpaint: pixels inside the selection changed" inside_changed "$out/in.png" "$out/inpaint.png"

# sr2
if [[ $(r sr2 status) == success ]]; then pass "sr2: PDB call succeeded"; else
    fail "sr2: PDB call succeeded" "$(r sr2 status)"; show_case sr2; fi
[[ $(r sr2 width)x$(r sr2 height) == 192x128 ]] && pass "sr2: image scaled to 192x128" ||
    fail "sr2: image scaled to 192x128" "$(r sr2 width)x$(r sr2 height)"
[[ $(r sr2 layers 0) == '["sr2", 192, 128]' ]] && pass "sr2: new 192x128 layer 'sr2' on top" ||
    fail "sr2: new 192x128 layer 'sr2' on top" "$(r sr2 layers)"
check "sr2: saved file is 192x128" size_is "$out/sr2.png" 192x128
# Mean and standard deviation of the values before/after agree within 3% of the mean (GIMP gives
# them on the precision's own scale: 0-255 for 8 bits, 0-1 beyond).
stats_close() {
    python3 -c "import json,sys; c=json.load(open('$res'))[sys.argv[1]]; b, a = c['mean_std_before'], c['mean_std_after']
print('before', b, 'after', a); sys.exit(0 if all(abs(x - y) < 0.03 * b[0] for x, y in zip(a, b)) else 1)" "$1"
}
check "sr2: result has the original's mean and spread" stats_close sr2

# denoise limited to the selection
if [[ $(r denoise status) == success ]]; then pass "denoise: PDB call succeeded"; else
    fail "denoise: PDB call succeeded" "$(r denoise status)"; show_case denoise; fi
check "denoise: pixels outside the selection unchanged" outside_equal "$out/in.png" "$out/denoise.png"
check "denoise: pixels inside the selection changed" inside_changed "$out/in.png" "$out/denoise.png"

# deblur (motion kernel) limited to the selection, x4, colorize of a gray image
if [[ $(r deblur status) == success && $(r deblur layers 0 0) == deblur ]]; then
    pass "deblur motion:5:30: PDB call succeeded, new layer 'deblur'"
else
    fail "deblur motion:5:30: PDB call succeeded, new layer 'deblur'" "$(r deblur status) $(r deblur layers)"
    show_case deblur
fi
check "deblur: pixels outside the selection unchanged" outside_equal "$out/in.png" "$out/deblur.png"
check "deblur: pixels inside the selection changed" inside_changed "$out/in.png" "$out/deblur.png"
[[ $(r sr4 status) == success && $(r sr4 layers 0) == '["sr4", 384, 256]' ]] &&
    pass "sr4: image and new layer 'sr4' 384x256" ||
    { fail "sr4: image and new layer 'sr4' 384x256" "$(r sr4 status) $(r sr4 layers)"; show_case sr4; }
[[ $(r colorize status) == success && $(r colorize rgb) == True && $(r colorize layers 0 0) == colorize ]] &&
    pass "colorize: gray image converted to RGB, new layer 'colorize'" ||
    { fail "colorize: gray image converted to RGB, new layer 'colorize'" "$(r colorize status) rgb=$(r colorize rgb) $(r colorize layers)"; show_case colorize; }

# errors reach the caller with a message, and leave the image alone
[[ $(r inpaint_no_selection status) == execution-error && $(r inpaint_no_selection message) == *selection* &&
    $(r inpaint_no_selection layers) == 1 ]] &&
    pass "inpaint without a selection: error naming the selection, image untouched" ||
    { fail "inpaint without a selection: error naming the selection, image untouched"; show_case inpaint_no_selection; }
[[ $(r missing_binary status) == execution-error && $(r missing_binary message) == *"not found"* &&
    $(r missing_binary width) == 96 ]] &&
    pass "missing binary: error says not found, image not scaled" ||
    { fail "missing binary: error says not found, image not scaled"; show_case missing_binary; }
[[ $(r binary_error status) == execution-error && $(r binary_error message) == vml-filter* &&
    $(r binary_error width) == 96 ]] &&
    pass "vml-filter failure: its own message is the error, image not scaled" ||
    { fail "vml-filter failure: its own message is the error, image not scaled"; show_case binary_error; }
echo "       | binary_error message: $(r binary_error message)"

# gray layers
[[ $(r gray_sr status) == success && $(r gray_sr width) == 192 && $(r gray_sr gray) == True ]] &&
    pass "gray image: sr2 works and the image stays gray" ||
    { fail "gray image: sr2 works and the image stays gray"; show_case gray_sr; }
[[ $(r deep_alpha_sr status) == success && $(r deep_alpha_sr width) == 192 && $(r deep_alpha_sr top_has_alpha) == True &&
    $(r deep_alpha_sr precision) == u16-non-linear ]] &&
    pass "16-bit RGBA layer: sr2 works, result keeps alpha and 16-bit precision" ||
    { fail "16-bit RGBA layer: sr2 works, result keeps alpha and 16-bit precision" \
        "$(r deep_alpha_sr status) $(r deep_alpha_sr width) alpha=$(r deep_alpha_sr top_has_alpha) $(r deep_alpha_sr precision)"; show_case deep_alpha_sr; }
check "16-bit RGBA: result has the original's mean and spread" stats_close deep_alpha_sr

# JPEG artefacts: the tables of the file the image came from, or the quality given
[[ $(r jpeg_file status) == success && $(r jpeg_file layers 0) == '["jpeg", 96, 64]' ]] &&
    pass "jpeg: image loaded from a JPEG restored with what GIMP kept of its tables, new layer 'jpeg'" ||
    { fail "jpeg: image loaded from a JPEG restored with what GIMP kept of its tables, new layer 'jpeg'" "$(r jpeg_file status) $(r jpeg_file layers)"; show_case jpeg_file; }
[[ $(r jpeg_no_file refused status) == execution-error && $(r jpeg_no_file refused message) == *quality* &&
    $(r jpeg_no_file given status) == success && $(r jpeg_no_file given layers 0 0) == jpeg ]] &&
    pass "jpeg: a PNG image needs a quality (refused without one, restored with one)" ||
    fail "jpeg: a PNG image needs a quality (refused without one, restored with one)" "$(r jpeg_no_file)"
[[ $(r jpeg_turned turned) == 6 && $(r jpeg_turned kept) == 1 && $(r jpeg_turned script) == 1 ]] &&
    pass "jpeg: a phone JPEG (EXIF 6): orientation 6 when GIMP turned it on import, none when kept as stored or loaded by a script" ||
    { fail "jpeg: a phone JPEG (EXIF 6): orientation 6 when GIMP turned it on import, none when kept as stored or loaded by a script" \
        "$(r jpeg_turned)"; show_case jpeg_turned; }
[[ $(r jpeg_turned call status) == success && $(r jpeg_turned call width) == 96 &&
    -s $out/headers.log && $(cat "$out/headers.log") != *orientation* ]] &&
    pass "jpeg: the procedure on that JPEG as a script loaded it: restored, no orientation in the request" ||
    fail "jpeg: the procedure on that JPEG as a script loaded it: restored, no orientation in the request" \
        "$(r jpeg_turned call) headers: $(cat "$out/headers.log" 2>/dev/null)"
[[ $(r estimate_noise status) == success && $(r estimate_noise width) == 192 ]] &&
    pass "estimate noise: sr2 with sigma_y auto works" ||
    { fail "estimate noise: sr2 with sigma_y auto works" "$(r estimate_noise status)"; show_case estimate_noise; }

# --- cancel: kill the plug-in mid-restore, as GIMP's Cancel does (SIGKILL); vml-filter must go.
# A 1024x1024 picture with an 820x820 hole keeps the classical method busy for many seconds on
# this machine; if it ever finishes before the kill, the case fails (it never passes untested).
mkdir -p "$out/cancel"
$IM -size 1024x1024 plasma:tan-navy -seed 4 -depth 8 "PNG24:$out/cancel/big.png"
plugin_path=$out/home/.config/GIMP/3.0/plug-ins/vml-restore/vml-restore.py
VML_ROOT_HOME=$out/home VML_TEST_OUT=$out/cancel VML_TEST_IMG=$out/in.png \
    VML_TEST_BIG=$out/cancel/big.png VML_TEST_ONLY=cancel \
    VML_TEST_METHOD=${VML_TEST_CANCEL_METHOD:-classical} \
    "$here/in-root.sh" "$root" "$bin" "$out" -- bash "$out/run.sh" >"$out/cancel/gimp.log" 2>&1 &
gimp_job=$!
plugin_pid="" child_pid="" seen=0 gone_after=""
for _ in $(seq 1 600); do
    sleep 0.2
    if [[ -z $child_pid ]]; then
        # The running plug-in (not GIMP's short "-query" start of it) and its one child.
        plugin_pid=$(pgrep -f -- "$plugin_path -gimp .*-run" | head -1)
        [[ -n $plugin_pid ]] && child_pid=$(pgrep -P "$plugin_pid" | head -1)
        continue
    fi
    seen=$((seen + 1))
    # Let vml-filter get past loading and into the restore (3 s), then pull the plug.
    if [[ $seen == 15 ]]; then
        kill -0 "$child_pid" 2>/dev/null || break
        kill -KILL "$plugin_pid"
        t_kill=$SECONDS
        for _ in $(seq 1 150); do
            kill -0 "$child_pid" 2>/dev/null || { gone_after=$((SECONDS - t_kill)); break; }
            sleep 0.2
        done
        break
    fi
done
if [[ -z $child_pid ]]; then
    fail "cancel: vml-filter was seen running under the plug-in" "plugin pid '${plugin_pid}'"
elif [[ $seen -lt 15 ]]; then
    fail "cancel: vml-filter still working 3 s in (it finished first: make the cancel job bigger)"
elif [[ -n $gone_after ]]; then
    pass "cancel: vml-filter exited ${gone_after} s after the plug-in was killed"
else
    fail "cancel: vml-filter still running 30 s after the plug-in was killed" "pid $child_pid"
    kill -KILL "$child_pid" 2>/dev/null
fi
wait "$gimp_job"
cancel_seen=$(python3 -c "import json; c = json.load(open('$out/cancel/results.json'))['cancel']
print(c['status'], len(c['layers']))" 2>/dev/null)
[[ $cancel_seen == *-error" 1" ]] && grep -q "gimp-console-3.0 exit 0" "$out/cancel/gimp.log" &&
    pass "cancel: the call fails, the image keeps its one layer, GIMP quits normally" ||
    fail "cancel: the call fails, the image keeps its one layer, GIMP quits normally" "$cancel_seen"
# Killed mid-restore, the plug-in must not leave an undo group open (GIMP then warns that it
# "left image undo in inconsistent state"): the group opens only once the answer is in.
if grep -q "inconsistent state" "$out/cancel/gimp.log"; then
    fail "cancel: no undo group left open" "$(grep -m1 "inconsistent state" "$out/cancel/gimp.log")"
else
    pass "cancel: no undo group left open"
fi

finish
