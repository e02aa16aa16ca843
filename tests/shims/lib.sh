# Shared helpers for the shim tests: counters, checks, the final "N passed, M failed" line.
# shellcheck shell=bash

PASSED=0
FAILED=0
FAILED_NAMES=()

pass() { PASSED=$((PASSED + 1)); echo "ok   - $1"; }
fail() {
    FAILED=$((FAILED + 1))
    FAILED_NAMES+=("$1")
    echo "FAIL - $1${2:+: $2}"
}

# check NAME CMD...: passes when CMD exits 0; on failure shows CMD's output.
check() {
    local name=$1 _out
    shift
    if _out=$("$@" 2>&1); then
        pass "$name"
    else
        fail "$name" "exit $?"
        printf "%s\n" "$_out" | tail -15 | sed 's/^/       | /'
    fi
}

# finish: prints the summary and exits non-zero when anything failed.
finish() {
    local t=$((SECONDS - ${T0:-0}))
    if [[ $FAILED -gt 0 ]]; then
        echo "failed: ${FAILED_NAMES[*]}"
    fi
    echo "(${t} s)"
    if [[ ${SKIPPED:-0} -gt 0 ]]; then
        echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
    else
        echo "$PASSED passed, $FAILED failed"
    fi
    [[ $FAILED -eq 0 ]]
    exit $?
}

repo_root() { cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd; }

# The vml-filter under test: $VML_FILTER or this checkout's release build.
find_vml_filter() {
    local f=${VML_FILTER:-$(repo_root)/target/release/vml-filter}
    if [[ ! -x $f ]]; then
        echo "no vml-filter binary at $f: run 'make build' first or set VML_FILTER" >&2
        return 1
    fi
    echo "$f"
}

# IM6 installs convert, IM7 magick; the tests need the real one (not a stand-in script).
ensure_imagemagick() {
    if [[ -x /usr/bin/convert || -x /usr/bin/magick ]]; then return 0; fi
    echo "installing ImageMagick (apt-get install imagemagick)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq imagemagick; } >&2
}

# Number of pixels that differ between two images (ImageMagick's AE metric).
pixels_differ() {
    local n
    n=$("$IM_COMPARE" -metric AE "$1" "$2" null: 2>&1 >/dev/null) || true
    echo "${n%% *}"
}
