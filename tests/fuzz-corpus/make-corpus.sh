#!/bin/bash
# Regenerates the fuzz seed corpus (tests/fuzz.rs) with ImageMagick 6: small images in every
# input format and in the variants their decoders branch on (bit depths, palettes, alpha,
# compressions, progressive/interlaced), and protocol streams built from them.
# The files are committed; this script only documents where they came from.
set -euo pipefail
cd "$(dirname "$0")"
rm -f img-* mask-* proto-*
src=(-size 16x12 -seed 7 plasma:fractal)
c() { convert "${src[@]}" -depth 8 "$@"; }
c -strip img-rgb8.png
c -strip -colorspace gray img-gray8.png
c -strip -colorspace gray -depth 16 img-gray16.png
c -strip -depth 16 PNG48:img-rgb16.png
c -strip -alpha set -channel A -evaluate set 60% +channel img-rgba8.png
c -strip -colorspace gray -alpha set -channel A -evaluate set 50% +channel img-graya8.png
c -strip -colors 8 PNG8:img-palette.png
c -strip -interlace PNG img-interlaced.png
c -strip -monochrome img-1bit.png
c -strip -quality 90 img-baseline.jpg
c -strip -interlace JPEG img-progressive.jpg
c -strip -colorspace gray img-gray.jpg
c -strip -sampling-factor 4:4:4 img-444.jpg
c -strip -orient RightTop img-exif-rotated.jpg
c -strip -colorspace gray img-p5.pgm
c -strip -colorspace gray -depth 16 img-p5-16.pgm
c -strip img-p6.ppm
c -strip -alpha set img-p7.pam
c -strip -compress none img-none.tif
c -strip -compress lzw img-lzw.tif
c -strip -compress zip -define tiff:predictor=2 img-deflate-predictor.tif
c -strip -compress rle img-packbits.tif
c -strip -compress jpeg img-jpeg.tif
c -strip -depth 16 img-rgb16.tif
c -strip -colorspace gray img-gray.tif
c -strip -define tiff:tile-geometry=8x8 img-tiled.tif
c -strip -endian MSB img-bigendian.tif
c -strip -define webp:lossless=true img-lossless.webp
c -strip -quality 50 img-lossy.webp
c -strip -alpha set -channel A -evaluate set 70% +channel -quality 50 img-lossy-alpha.webp
c -strip BMP3:img-24.bmp
c -strip -alpha set BMP:img-32-alpha.bmp
c -strip -colors 16 -type palette BMP3:img-palette.bmp
c -strip -colors 16 -type palette -compress rle BMP3:img-rle.bmp
c -strip BMP2:img-v2.bmp
convert -size 16x12 xc:black -fill white -draw "rectangle 4,3 10,8" -strip -colorspace gray mask-box.png
convert -size 16x12 xc:black -fill white -draw "rectangle 4,3 10,8" -strip -colorspace gray mask-box.pgm

# A protocol request: header line with the byte counts, then the payloads.
req() { # header-json-with-IMG-and-MASK-placeholders image [mask]
    local h=$1 img=$2 mask=${3:-}
    h=${h//IMG/$(stat -c %s "$img")}
    [ -n "$mask" ] && h=${h//MASK/$(stat -c %s "$mask")}
    printf '%s\n' "$h"
    cat "$img"
    [ -n "$mask" ] && cat "$mask"
    return 0
}
req '{"vml":1,"task":{"kind":"sr","scale":2},"image":{"bytes":IMG},"options":{"method":"classical","seed":0}}' img-rgb8.png > proto-sr.bin
req '{"vml":1,"task":{"kind":"inpaint"},"image":{"bytes":IMG},"mask":{"bytes":MASK},"options":{"method":"classical","format":"webp"}}' img-rgb8.png mask-box.png > proto-inpaint.bin
req '{"vml":1,"task":{"kind":"deblur","kernel":"gaussian","sigma":1.5},"image":{"bytes":IMG},"options":{"sigma_y":0.01,"tile":0,"max_memory":"1G"}}' img-p6.ppm > proto-deblur.bin
req '{"vml":1,"task":{"kind":"denoise","sigma":0.1},"image":{"bytes":IMG},"options":{"format":"tiff","quality":"fast"}}' img-gray16.png > proto-denoise.bin
req '{"vml":1,"task":{"kind":"colorize"},"image":{"bytes":IMG},"options":{"seed":3}}' img-baseline.jpg > proto-colorize.bin
{ req '{"vml":1,"task":{"kind":"sr","scale":4,"downsample":"bicubic"},"image":{"bytes":IMG}}' img-p5.pgm
  req '{"vml":1,"task":{"kind":"deblur","kernel":"motion","length":3,"angle":30},"image":{"bytes":IMG}}' img-lossless.webp
  req '{"vml":1,"task":{"kind":"inpaint"},"image":{"bytes":IMG},"mask":{"bytes":MASK}}' img-24.bmp mask-box.pgm
} > proto-three.bin
ls -l img-* mask-* proto-* | awk '{s+=$5} END {print NR " files, " s " bytes"}'

# JPEG files for the marker reader (`jpeg::read_tables`): every layout it accepts.
rm -f jpeg-*
c -strip -quality 30 -sampling-factor 4:2:0 jpeg-420.jpg
c -strip -quality 60 -sampling-factor 4:2:2 jpeg-422.jpg
c -strip -quality 90 -sampling-factor 4:4:4 jpeg-444.jpg
c -strip -quality 50 -interlace JPEG jpeg-progressive.jpg
c -strip -quality 50 -colorspace gray jpeg-gray.jpg
c -strip -quality 50 -define jpeg:restart-interval=1 jpeg-restart.jpg

# Blur kernels for `--deblur kernel:FILE`: text (rows of numbers, comments, commas) and an image.
printf '# a 3x3 kernel\n1 2 1\n2 4 2\n1 2 1\n' > kernel-3x3.txt
printf '0, 0.1, 0\n0.1, 0.6, 0.1 # centre\n0, 0.1, 0\n\n' > kernel-commas.txt
printf '1e-3 2.5E-1 0\n0 1 0\n' > kernel-exponents.txt
printf '1\n' > kernel-single.txt
convert -size 5x5 xc:black -fill white -draw "line 0,0 4,4" -strip -colorspace gray kernel-line.pgm
