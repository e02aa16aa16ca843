#!/usr/bin/env python3
"""Builds the default model's training pack from the extracted photo sources.

Called by make-data.sh. The list below is the whole selection: photographs only (no
drawings, renders or abstract art), each with the licence its package's copyright file
gives. Every image is decoded, EXIF-rotated, converted to 8-bit RGB and downscaled with a
Lanczos filter so that its short side is --short-side pixels (never upscaled), then
written as PNG to train/ or val/. The validation split is whole photos chosen by the
SHA-256 of their id (10 %, at least 8), so it does not depend on file order or on the
machine.
"""

import argparse
import glob
import hashlib
import json
import os
import subprocess
import sys

from PIL import Image, ImageOps

# (id, package, path inside the package or wheel, author, licence)
MATE = "mate-backgrounds"
PLASMA = "plasma-workspace-wallpapers"
LOMIRI = "lomiri-wallpapers"  # the copyright file for both photo packages lives here
L16 = "lomiri-wallpapers-16.04"
L20 = "lomiri-wallpapers-20.04"
LXQT = "lxqt-themes"
SKI = "scikit-image"

MB = "usr/share/backgrounds/mate/nature/"
PW = "usr/share/wallpapers/"
UB = "usr/share/backgrounds/"
LX = "usr/share/lxqt/wallpapers/"

PHOTOS = [
    # mate-backgrounds 1.26: the "nature" folder; "abstract" and "desktop" are art.
    ("mate-aqua", MATE, MB + "Aqua.jpg", "Charles Barbin", "GPL-2+"),
    ("mate-blinds", MATE, MB + "Blinds.jpg", "Lennart Poettering, Andrea Cimitan", "GPL-2+"),
    ("mate-dune", MATE, MB + "Dune.jpg", "Marco Cogoni, Hylke Bons", "GPL-2+"),
    ("mate-freshflower", MATE, MB + "FreshFlower.jpg", "Jens Ansorg", "GPL-2+"),
    ("mate-garden", MATE, MB + "Garden.jpg", "Charles Barbin", "GPL-2+"),
    ("mate-greenmeadow", MATE, MB + "GreenMeadow.jpg", "Timothy Schellhase, Lapo Calamandrei", "GPL-2+"),
    ("mate-ladybird", MATE, MB + "LadyBird.jpg", "Charles Barbin", "GPL-2+"),
    ("mate-raindrops", MATE, MB + "RainDrops.jpg", "blackcombwhistler07", "GPL-2+"),
    ("mate-storm", MATE, MB + "Storm.jpg", "Sergey Nazarov", "GPL-2+"),
    ("mate-twowings", MATE, MB + "TwoWings.jpg", "Charles Barbin, Hylke Bons", "GPL-2+"),
    ("mate-wood", MATE, MB + "Wood.jpg", "Jean-Francois Fortin Tam", "GPL-2+"),
    ("mate-yellowflower", MATE, MB + "YellowFlower.jpg", "Charles Barbin", "GPL-2+"),
    # plasma-workspace-wallpapers 5.27: the photographic ones (others are renders).
    ("plasma-bythewater", PLASMA, PW + "BytheWater/contents/images/2560x1600.jpg", "KDE Visual Design Group", "GPL-2+"),
    ("plasma-coldripple", PLASMA, PW + "ColdRipple/contents/images/2560x1600.jpg", "KDE Visual Design Group", "GPL-2+"),
    ("plasma-colorfulcups", PLASMA, PW + "ColorfulCups/contents/images/2560x1600.jpg", "KDE Visual Design Group", "GPL-2+"),
    ("plasma-darkesthour", PLASMA, PW + "DarkestHour/contents/images/2560x1600.jpg", "KDE Visual Design Group", "GPL-2+"),
    ("plasma-eveningglow", PLASMA, PW + "EveningGlow/contents/images/2560x1600.jpg", "KDE Visual Design Group", "GPL-2+"),
    ("plasma-fallenleaf", PLASMA, PW + "FallenLeaf/contents/images/2560x1600.jpg", "KDE Visual Design Group", "GPL-2+"),
    ("plasma-grey", PLASMA, PW + "Grey/contents/images/2560x1600.jpg", "KDE Visual Design Group", "GPL-2+"),
    ("plasma-kite", PLASMA, PW + "Kite/contents/images/2560x1600.jpg", "KDE Visual Design Group", "GPL-2+"),
    ("plasma-onestandsout", PLASMA, PW + "OneStandsOut/contents/images/2560x1600.jpg", "KDE Visual Design Group", "GPL-2+"),
    ("plasma-path", PLASMA, PW + "Path/contents/images/2560x1600.jpg", "KDE Visual Design Group", "GPL-2+"),
    ("plasma-summer1am", PLASMA, PW + "summer_1am/contents/images/2560x1600.jpg", "KDE Visual Design Group", "GPL-2+"),
    # lomiri-wallpapers-16.04 / -20.04: per-file licences from lomiri-wallpapers' copyright.
    ("lomiri-aitzgorri", L16, UB + "aitzgorri_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0"),
    ("lomiri-bridge", L16, UB + "Bridge_by_Sander_Klootwijk.jpg", "Sander Klootwijk", "CC-BY-SA-4.0"),
    ("lomiri-dragonfly", L16, UB + "Dragonfly_by_Bolly.jpg", "Bolly", "CC-BY-SA-4.0"),
    ("lomiri-free", L16, UB + "free_by_Peter_Nerlich.jpg", "Peter Nerlich", "CC-BY-SA-4.0"),
    ("lomiri-friends", L16, UB + "friends_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0"),
    ("lomiri-greentock", L16, UB + "greentock_by_Peter_Nerlich.jpg", "Peter Nerlich", "CC-BY-SA-4.0"),
    ("lomiri-life", L16, UB + "life_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0"),
    ("lomiri-picosdeeuropa", L16, UB + "picosdeeuropa_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0"),
    ("lomiri-picture0b", L16, UB + "Picture_0B_by_freespace.jpg", "Trevor \"Freespace\"", "CC-BY-4.0"),
    ("lomiri-picture1a", L16, UB + "Picture_1A_by_freespace.jpg", "Trevor \"Freespace\"", "CC-BY-4.0"),
    ("lomiri-seeding", L16, UB + "seeding_by_Clements_Engelhardt.jpg", "Clemens Engelhardt", "CC0-1.0"),
    ("lomiri-sunset", L16, UB + "sunset_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0"),
    ("lomiri-wine", L16, UB + "Wine_by_Jakkub_Mede.jpg", "Jakub Mede", "CC-BY-4.0"),
    ("lomiri-kleiber", L20, UB + "Kleiber_by_Lukas_Baubkus.jpg", "Lukas Baubkus", "CC-BY-SA-3.0"),
    # lxqt-themes 1.2: the photographs in wallpapers/ (LGPL-2.1+ per Debian's copyright file,
    # CC-BY-SA-3.0 per the folder's own License file; both allow redistribution).
    ("lxqt-butterfly-wimer", LXQT, LX + "Butterfly-Kenneth-Wimer.jpg", "Kenneth Wimer", "LGPL-2.1+ / CC-BY-SA-3.0"),
    ("lxqt-valendas", LXQT, LX + "Valendas.png", "LXQt team", "LGPL-2.1+ / CC-BY-SA-3.0"),
    ("lxqt-after-the-rain", LXQT, LX + "after-the-rain.jpg", "stefonarch", "LGPL-2.1+ / CC-BY-SA-3.0"),
    ("lxqt-appleflower", LXQT, LX + "appleflower.png", "stefonarch", "LGPL-2.1+ / CC-BY-SA-3.0"),
    ("lxqt-beam", LXQT, LX + "beam.png", "stefonarch", "LGPL-2.1+ / CC-BY-SA-3.0"),
    ("lxqt-butterfly", LXQT, LX + "butterfly.png", "stefonarch", "LGPL-2.1+ / CC-BY-SA-3.0"),
    ("lxqt-cloud", LXQT, LX + "cloud.png", "LXQt team", "LGPL-2.1+ / CC-BY-SA-3.0"),
    ("lxqt-drop", LXQT, LX + "drop.png", "stefonarch", "LGPL-2.1+ / CC-BY-SA-3.0"),
    ("lxqt-flowers", LXQT, LX + "flowers.png", "stefonarch", "LGPL-2.1+ / CC-BY-SA-3.0"),
    ("lxqt-fog", LXQT, LX + "fog.jpg", "stefonarch", "LGPL-2.1+ / CC-BY-SA-3.0"),
    ("lxqt-this-is-not-windows", LXQT, LX + "this-is-not-windows.jpg", "stefonarch", "LGPL-2.1+ / CC-BY-SA-3.0"),
    # scikit-image 0.26.0 wheel, skimage/data: the colour photographs (licences from the
    # docstrings of skimage.data; grey-level and microscopy images are left out).
    ("skimage-astronaut", SKI, "astronaut.png", "NASA", "public domain"),
    ("skimage-chelsea", SKI, "chelsea.png", "Stefan van der Walt", "CC0"),
    ("skimage-coffee", SKI, "coffee.png", "Rachel Michetti", "CC0"),
    ("skimage-rocket", SKI, "rocket.jpg", "SpaceX", "public domain"),
    ("skimage-hubble", SKI, "hubble_deep_field.jpg", "NASA", "public domain"),
]


def deb_versions(debs):
    out = {}
    for deb in sorted(glob.glob(os.path.join(debs, "*.deb"))):
        fields = subprocess.run(
            ["dpkg-deb", "-f", deb, "Package", "Version"], check=True, capture_output=True, text=True
        ).stdout
        kv = dict(line.split(": ", 1) for line in fields.strip().splitlines())
        out[kv["Package"]] = kv["Version"]
    return out


def split_key(photo_id):
    return hashlib.sha256(photo_id.encode()).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--debs", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--skimage", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--short-side", type=int, default=384)
    args = ap.parse_args()

    ids = [p[0] for p in PHOTOS]
    if len(set(ids)) != len(ids):
        sys.exit("duplicate photo id")
    n_val = max(8, round(0.1 * len(PHOTOS)))
    val_ids = set(sorted(ids, key=split_key)[:n_val])

    versions = deb_versions(args.debs)
    versions[SKI] = os.path.basename(
        sorted(glob.glob(os.path.join(args.skimage, "..", "..", "scikit_image-*.whl")))[-1]
    ).split("-")[1]

    missing = []
    for pid, pkg, rel, _, _ in PHOTOS:
        src = os.path.join(args.skimage if pkg == SKI else args.root, rel)
        if not os.path.isfile(src):
            missing.append(src)
    if missing:
        sys.exit("missing source files (package version changed?):\n  " + "\n  ".join(missing))

    for split in ("train", "val"):
        os.makedirs(os.path.join(args.out, split), exist_ok=True)
        for old in glob.glob(os.path.join(args.out, split, "*.png")):
            os.remove(old)

    entries = []
    for pid, pkg, rel, author, licence in PHOTOS:
        src = os.path.join(args.skimage if pkg == SKI else args.root, rel)
        with Image.open(src) as im:
            im = ImageOps.exif_transpose(im)
            orig = im.size
            # Palette and alpha images: composite on nothing, keep the colour channels.
            im = im.convert("RGB")
            w, h = im.size
            scale = args.short_side / min(w, h)
            if scale < 1.0:
                im = im.resize((round(w * scale), round(h * scale)), Image.LANCZOS)
        split = "val" if pid in val_ids else "train"
        dst = os.path.join(args.out, split, pid + ".png")
        im.save(dst, optimize=False)
        entries.append(
            {
                "id": pid,
                "split": split,
                "package": pkg,
                "version": versions.get(pkg, "?"),
                "path": rel,
                "author": author,
                "licence": licence,
                "original_size": list(orig),
                "size": list(im.size),
            }
        )
        print(f"{split:5} {pid:28} {orig[0]}x{orig[1]} -> {im.size[0]}x{im.size[1]}", file=sys.stderr)

    manifest = {
        "short_side": args.short_side,
        "counts": {s: sum(e["split"] == s for e in entries) for s in ("train", "val")},
        "versions": versions,
        "photos": entries,
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"pack: {args.out} ({manifest['counts']})", file=sys.stderr)


if __name__ == "__main__":
    main()
