#!/bin/bash
# Regenerates the JPEG fixtures of tests/jpeg.rs with ImageMagick 6 (libjpeg-turbo): an
# original, JPEG files made from it the way users make them (`convert -quality Q`, chroma
# 4:2:0 / 4:2:2 / 4:4:4, baseline and progressive), and each file decoded back to PNG by the
# same library, which is what the operator's exact round trip is checked against.
# The files are committed; this script documents where they came from.
set -euo pipefail
cd "$(dirname "$0")"
rm -f *.png *.jpg
# 100×75: not a whole number of 16×16 MCUs, so the edge padding is exercised too.
convert -size 100x75 -seed 11 plasma:fractal -blur 0x1 \
    \( -size 100x75 -seed 5 plasma:fractal -colorspace gray -edge 1 \) -compose overlay -composite \
    -depth 8 -strip PNG24:orig.png
for qs in 10-420 30-420 75-420 30-422 30-444; do
    q=${qs%-*} s=${qs#*-}
    convert orig.png -strip -quality $q -sampling-factor "4:${s:1:1}:${s:2:1}" q$qs.jpg
    convert q$qs.jpg -depth 8 PNG24:q$qs.png
done
convert orig.png -strip -quality 50 -interlace JPEG q50-progressive.jpg
convert q50-progressive.jpg -depth 8 PNG24:q50-progressive.png
convert orig.png -colorspace gray -type grayscale -strip PNG:orig-gray.png
convert orig-gray.png -strip -quality 50 q50-gray.jpg
convert q50-gray.jpg -depth 8 -type grayscale PNG:q50-gray.png
ls -l | awk '{s+=$5} END {print NR-1 " files, " s " bytes"}'
