#!/usr/bin/env bash
# ImageMagick shim tests: filters/vml-magick, filters/delegates.xml and the plain pipeline
# `magick in.jpg png:- | vml-filter --sr 4 | magick - out.webp`, with real ImageMagick:
# IM6 (`convert`, Debian bookworm, installed on the host by this script when missing) and IM7
# (`magick`, inside the cached Debian trixie root of tests/shims/trixie-root.sh).
#
#   tests/shims/im-test.sh            (VML_FILTER=... to test another binary)
#   VML_TEST_NO_IM7=1 tests/shims/... skip the IM7 part (it is then counted as failed)
#
# All restorations but one use --method classical: no network, fast. The one network case uses
# the shipped default model (models/default) for 10 VML-MAP steps on a 32x24 picture.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
repo=$(repo_root)
T0=$SECONDS
SKIPPED=0

echo "# ImageMagick shim tests"
bin=$(find_vml_filter) || { fail "vml-filter binary present"; finish; }
ensure_imagemagick || { fail "ImageMagick installed on the host"; finish; }
IM=/usr/bin/convert
IM_COMPARE=/usr/bin/compare
IM_IDENTIFY=/usr/bin/identify
VM=$repo/filters/vml-magick
export VML_FILTER=$bin
# The host's IM6 by its real path: some machines put a stand-in `convert` first on PATH.
export VML_MAGICK=$IM
M=(-method classical)

out=$(mktemp -d /tmp/vml-im-test.XXXXXX)
trap 'rm -rf "$out"' EXIT
[[ -n ${VML_TEST_KEEP:-} ]] && trap 'echo "kept $out"' EXIT
cd "$out" || exit 1

# Test pictures: a JPEG with structure, a white hole in a PNG plus its mask as a GIF, an RGBA
# PNG, a 16-bit TIFF, a TIFF whose orientation tag says "rotate 90 degrees".
$IM -size 64x48 plasma:green-purple -seed 5 -blur 0x1 -quality 92 photo.jpg
$IM photo.jpg -fill white -draw "rectangle 20,16 35,27" -type TrueColor PNG24:holed.png
$IM -size 64x48 xc:black -fill white -draw "rectangle 20,16 35,27" holes.gif
$IM photo.jpg -alpha set -channel A -fx "i<32 ? 1 : 0.5" +channel rgba.png
$IM -size 64x48 plasma:green-purple -seed 6 -depth 16 deep.tif
$IM photo.jpg -orient RightTop rotated.tif
# A JPEG as a phone stores it: ImageMagick 6 writes no orientation into a JPEG without an
# EXIF block, so the camera's APP1 block (IFD0 with Orientation = 6, "rotate 90 degrees")
# goes in by hand, right after the start of image.
{ printf '\xff\xd8\xff\xe1\x00\x22Exif\x00\x00II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00\x00\x00\x00\x00\x00\x00'
  tail -c +3 photo.jpg; } > rotated.jpg

size_is() { [[ $($IM "$1" -format "%wx%h" info:) == "$2" ]]; }
format_is() { [[ $($IM "$1" -format "%m" info:) == "$2" ]]; }

# --- usage --------------------------------------------------------------------------------------
"$VM" >/dev/null 2>err.txt
st=$?
[[ $st == 2 ]] && grep -q "INPUT" err.txt && pass "no arguments: exit 2 with a usage message" ||
    fail "no arguments: exit 2 with a usage message" "exit $st"
"$VM" -help >help.txt 2>&1 && grep -q -- "-inpaint" help.txt && pass "-help prints the options" ||
    fail "-help prints the options"
"$VM" holed.png -inpaint out.png 2>err.txt
st=$?
[[ $st == 2 ]] && grep -q -- "-mask" err.txt && pass "-inpaint without -mask: exit 2 naming -mask" ||
    fail "-inpaint without -mask: exit 2 naming -mask" "exit $st"
"$VM" photo.jpg -sr 2 -denoise 0.1 out.png 2>/dev/null
[[ $? == 2 ]] && pass "two tasks: exit 2" || fail "two tasks: exit 2"

# --- IM6 ----------------------------------------------------------------------------------------
echo "# IM6: $($IM -version | head -1)"
check "IM6: jpg -sr 2 -> tif, exit 0" "$VM" photo.jpg -sr 2 "${M[@]}" sr.tif
check "IM6: tif is a 128x96 TIFF" bash -c "[[ \$($IM sr.tif -format '%m %wx%h' info:) == 'TIFF 128x96' ]]"

check "IM6: inpaint png with a GIF mask" "$VM" holed.png -inpaint -mask holes.gif "${M[@]}" inpainted.png
check "IM6: inpainted image keeps 64x48" size_is inpainted.png 64x48
inside_changed() {
    $IM holed.png -crop 16x12+20+16 +repage a.png
    $IM inpainted.png -crop 16x12+20+16 +repage b.png
    local n
    n=$(pixels_differ a.png b.png)
    echo "changed in the hole: $n of 192"
    [[ $n =~ ^[0-9]+$ && $n -gt 150 ]]
}
check "IM6: the white hole was filled" inside_changed
outside_close() {
    # Known pixels must survive; a JPEG-free PNG round trip allows at most rounding.
    $IM holed.png -fill black -draw "rectangle 20,16 35,27" a.png
    $IM inpainted.png -alpha off -fill black -draw "rectangle 20,16 35,27" b.png
    local n
    n=$($IM_COMPARE -metric AE -fuzz 1% a.png b.png null: 2>&1)
    echo "known pixels changed by more than 1%: $n"
    [[ ${n%% *} == 0 ]]
}
check "IM6: known pixels kept outside the mask" outside_close

check "IM6: stdin to stdout (- ... png:-)" bash -c "'$VM' - -sr 2 ${M[*]} png:- <photo.jpg >stdout.png"
check "IM6: stdout result is a 128x96 PNG" bash -c "[[ \$($IM stdout.png -format '%m %wx%h' info:) == 'PNG 128x96' ]]"

check "IM6: plain pipeline convert | vml-filter --sr 4 | convert - out.webp" \
    bash -c "set -o pipefail; $IM photo.jpg png:- | '$bin' --sr 4 --method classical | $IM - pipe.webp"
check "IM6: pipeline output is a 256x192 WEBP" bash -c "[[ \$($IM pipe.webp -format '%m %wx%h' info:) == 'WEBP 256x192' ]]"

for t in "-deblur gaussian:1.5" "-denoise 0.1" "-colorize"; do
    # shellcheck disable=SC2086
    check "IM6: $t runs (png -> jpg, 64x48)" bash -c "'$VM' photo.jpg $t ${M[*]} -quality 90 t.jpg && [[ \$($IM t.jpg -format '%m %wx%h' info:) == 'JPEG 64x48' ]]"
done
check "IM6: 16-bit TIFF in, 16-bit PNG out" bash -c "'$VM' deep.tif -sr 2 ${M[*]} deep-out.png && [[ \$($IM deep-out.png -format '%wx%h %z' info:) == '128x96 16' ]]"
check "IM6: orientation tag applied (rotated TIFF -> 96x128)" bash -c "'$VM' rotated.tif -sr 2 ${M[*]} rot.png && [[ \$($IM rot.png -format '%wx%h' info:) == 96x128 ]]"
check "IM6: alpha channel survives" bash -c "'$VM' rgba.png -sr 2 ${M[*]} rgba-out.png && [[ \$($IM rgba-out.png -format '%A' info:) =~ ^(True|Blend)$ ]]"
# -jpeg auto hands the JPEG itself to vml-filter (which refuses anything else with exit 2, so
# exit 0 shows the file went through with its tables); -jpeg Q composes with a task.
check "IM6: -jpeg auto on a JPEG (64x48)" bash -c "'$VM' photo.jpg -jpeg auto ${M[*]} jq.png && [[ \$($IM jq.png -format '%wx%h' info:) == 64x48 ]]"
check "IM6: -jpeg auto on a JPEG stored rotated (EXIF 6) -> upright 48x64" bash -c "[[ \$($IM rotated.jpg -format '%[orientation]' info:) == RightTop ]] && '$VM' rotated.jpg -jpeg auto ${M[*]} jrot.png && [[ \$($IM jrot.png -format '%wx%h' info:) == 48x64 ]]"
check "IM6: -sr 2 -jpeg 30 -> 128x96" bash -c "'$VM' photo.jpg -sr 2 -jpeg 30 ${M[*]} jsr.png && [[ \$($IM jsr.png -format '%wx%h' info:) == 128x96 ]]"
"$VM" holed.png -jpeg auto "${M[@]}" jbad.png 2>err.txt
st=$?
[[ $st == 2 && ! -e jbad.png ]] && grep -qi "jpeg" err.txt && pass "IM6: -jpeg auto on a PNG: exit 2, no output" ||
    fail "IM6: -jpeg auto on a PNG: exit 2, no output" "exit $st"
check "IM6: -sigma-y auto passes through" "$VM" photo.jpg -sr 2 -sigma-y auto "${M[@]}" sy.png

icc=""
for f in /usr/share/color/icc/ghostscript/a98.icc /usr/share/color/icc/*/*.icc; do
    [[ -f $f ]] && { icc=$f; break; }
done
if [[ -n $icc ]]; then
    $IM photo.jpg -profile "$icc" tagged.jpg
    check "IM6: ICC profile of the input kept" bash -c "'$VM' tagged.jpg -sr 2 ${M[*]} tagged-out.jpg && cmp -s <($IM tagged.jpg icc:-) <($IM tagged-out.jpg icc:-)"
    # vml-filter itself, on a file ImageMagick tagged, read back by identify -verbose.
    check "vml-filter keeps the ICC profile (identify -verbose)" bash -c "'$bin' --sr 2 --method classical -i tagged.jpg -o direct.png && $IM_IDENTIFY -verbose direct.png | grep -q 'Profile-icc: ' && cmp -s <($IM tagged.jpg icc:-) <($IM direct.png icc:-)"
    printf '%s' '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator><rdf:Seq><rdf:li>Test</rdf:li></rdf:Seq></dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>' >meta.xmp
    $IM tagged.jpg -profile meta.xmp tagged-xmp.jpg
    # JPEG only: IM6 reads PNG XMP from its own zTXt "Raw profile type xmp", not from the
    # standard iTXt chunk vml-filter writes (tests/cli_checks.rs reads that one back).
    check "vml-filter keeps the XMP packet (jpg, identify -verbose)" bash -c "'$bin' --sr 2 --method classical -i tagged-xmp.jpg -o xmp-out.jpg && $IM_IDENTIFY -verbose xmp-out.jpg | grep -q 'Profile-xmp: ' && cmp -s <($IM tagged-xmp.jpg xmp:-) <($IM xmp-out.jpg xmp:-)"
    $IM photo.jpg -set comment "Scanned 1962, slide 4" commented.jpg
    for ext in png jpg; do
        check "vml-filter keeps the comment ($ext, identify %c)" bash -c "'$bin' --sr 2 --method classical -i commented.jpg -o c-out.$ext && [[ \$($IM_IDENTIFY -format %c c-out.$ext) == 'Scanned 1962, slide 4' ]]"
    done
    check "vml-filter --strip writes no profile" bash -c "'$bin' --sr 2 --method classical --strip -i tagged.jpg -o stripped.png && ! $IM_IDENTIFY -verbose stripped.png | grep -q 'Profile-icc: '"
else
    echo "SKIP - ICC profile kept: no .icc file on this machine (install ghostscript)"
    SKIPPED=$((SKIPPED + 1))
fi

# Failures: the binary's exit code and message come through; ImageMagick's read errors are named.
"$bin" --sr 3 --method classical <photo.jpg >/dev/null 2>direct.err
direct=$?
"$VM" photo.jpg -sr 3 "${M[@]}" bad.png 2>shim.err
shim=$?
[[ $direct != 0 && $shim == "$direct" ]] && grep -q "vml-filter failed" shim.err &&
    pass "vml-filter's failure code comes through (sr 3: exit $shim)" ||
    fail "vml-filter's failure code comes through" "direct $direct, shim $shim"
echo "       | vml-filter said: $(grep -v '^{"progress' shim.err | head -2 | tr '\n' ' ')"
"$VM" missing.jpg -sr 2 "${M[@]}" x.png 2>err.txt
st=$?
[[ $st == 1 ]] && grep -q "could not read 'missing.jpg'" err.txt && pass "unreadable input: exit 1 naming the file" ||
    fail "unreadable input: exit 1 naming the file" "exit $st"
grep -q "empty" err.txt && fail "missing input: no 'empty image' message from vml-filter" "$(cat err.txt)" ||
    pass "missing input: no 'empty image' message from vml-filter"
"$VM" photo.jpg -sr 2 -im /nonexistent/magick "${M[@]}" x.png 2>err.txt
st=$?
[[ $st == 1 ]] && grep -q "'/nonexistent/magick' not found" err.txt && pass "-im of a missing program: exit 1 naming it" ||
    fail "-im of a missing program: exit 1 naming it" "exit $st: $(cat err.txt)"
# The command line wins over VML_MAGICK_OPTS: with the environment's method, this would fail.
VML_MAGICK_OPTS="-method no-such-method -seed 3" "$VM" photo.jpg -sr 2 -method classical x.png 2>err.txt
st=$?
[[ $st == 0 ]] && pass "-method on the command line overrides VML_MAGICK_OPTS" ||
    fail "-method on the command line overrides VML_MAGICK_OPTS" "exit $st: $(cat err.txt)"

# One real-network case: the shipped default model with VML-MAP (the default method), 10 steps
# on a tiny picture. Super-resolution must agree with its input: the result averaged back over
# 2x2 blocks (the SR operator) is close to the input (mean absolute error < 6%; an unconverged
# 2-step run is at 25%).
$IM -size 32x24 plasma:green-purple -seed 5 -blur 0x1 small.png
check "IM6 + network: -sr 2 with the default model (vml-map, 10 steps)" "$VM" small.png -sr 2 -steps 10 -seed 1 net.png
net_consistent() {
    $IM net.png -scale 50% net-down.png
    local m
    m=$($IM_COMPARE -metric MAE small.png net-down.png null: 2>&1)
    echo "MAE input vs result averaged 2x2: $m"
    m=${m#*(}
    m=${m%)*}
    python3 -c "import sys; sys.exit(0 if float('$m') < 0.06 else 1)"
}
check "IM6 + network: 64x48 result consistent with its input" net_consistent
check "IM6 + network: result is 64x48" size_is net.png 64x48

# delegates.xml with IM6: the prefix vmlsr2: routes the read through vml-magick.
mkdir -p im6conf && cp "$repo/filters/delegates.xml" im6conf/
check "IM6: delegates.xml: convert vmlsr2:photo.jpg out.png" \
    env MAGICK_CONFIGURE_PATH="$out/im6conf" PATH="$repo/filters:$PATH" VML_MAGICK_OPTS="-method classical" \
    $IM vmlsr2:photo.jpg dlg.png
check "IM6: delegate output is 128x96" size_is dlg.png 128x96

# --- IM7, in the trixie root ---------------------------------------------------------------------
if [[ -n ${VML_TEST_NO_IM7:-} ]]; then
    fail "IM7 tests (VML_TEST_NO_IM7 is set: not run)"
elif [[ $(id -u) != 0 ]]; then
    fail "IM7 tests need root for the trixie root (chroot)"
elif ! root=$("$here/trixie-root.sh"); then
    fail "IM7 tests: the Debian trixie root could not be built (see the message above)"
else
    cat >im7.sh <<EOS
cd "$out" || exit 1
unset VML_MAGICK
magick -version | head -1
"$VM" photo.jpg -sr 2 ${M[*]} -verbose im7-sr.webp 2>im7-sr.err; echo "vml-magick \$?"
set -o pipefail
magick photo.jpg png:- | "$bin" --sr 4 --method classical | magick - im7-pipe.webp; echo "pipeline \$?"
mkdir -p im7conf && cp "$repo/filters/delegates.xml" im7conf/
MAGICK_CONFIGURE_PATH=$out/im7conf PATH=$repo/filters:\$PATH VML_MAGICK_OPTS="-method classical" \
    magick vmlsr2:photo.jpg im7-dlg.png; echo "delegate \$?"
"$VM" holed.png -inpaint -mask holes.gif ${M[*]} im7-inpaint.png; echo "inpaint \$?"
EOS
    VML_FILTER=$bin "$here/in-root.sh" "$root" "$bin" "$out" -- bash "$out/im7.sh" >im7.log 2>&1
    echo "# IM7: $(head -1 im7.log)"
    grep -q "^vml-magick 0" im7.log && pass "IM7: vml-magick picks magick, jpg -sr 2 -> webp" ||
        { fail "IM7: vml-magick jpg -sr 2 -> webp"; tail -n 5 im7.log im7-sr.err | sed 's/^/       | /'; }
    check "IM7: webp is 128x96" bash -c "[[ \$($IM im7-sr.webp -format '%m %wx%h' info:) == 'WEBP 128x96' ]]"
    grep -q "ImageMagick command: magick;" im7-sr.err && pass "IM7: vml-magick chose magick (IM7)" ||
        fail "IM7: vml-magick chose magick (IM7)"
    grep -q '{"progress"' im7-sr.err && pass "IM7: -verbose shows vml-filter's progress lines" ||
        fail "IM7: -verbose shows vml-filter's progress lines"
    grep -q "^pipeline 0" im7.log && pass "IM7: plain pipeline magick | vml-filter --sr 4 | magick" ||
        fail "IM7: plain pipeline magick | vml-filter --sr 4 | magick"
    check "IM7: pipeline output is a 256x192 WEBP" bash -c "[[ \$($IM im7-pipe.webp -format '%m %wx%h' info:) == 'WEBP 256x192' ]]"
    grep -q "^delegate 0" im7.log && pass "IM7: delegates.xml: magick vmlsr2:photo.jpg" ||
        fail "IM7: delegates.xml: magick vmlsr2:photo.jpg"
    check "IM7: delegate output is 128x96" size_is im7-dlg.png 128x96
    grep -q "^inpaint 0" im7.log && pass "IM7: inpaint with a GIF mask" || fail "IM7: inpaint with a GIF mask"
fi

finish
