#!/usr/bin/env python3
"""Builds the default model's training pack from the extracted photo sources.

Called by make-data.sh. The list below is the whole selection: photographs only (no
drawings, renders or abstract art), each with the licence its package's copyright file
gives. Every source file is checked against its pinned SHA-256 (sources.sha256), decoded,
hashed by its pixels, checked against the standard evaluation images, EXIF-rotated,
converted to 8-bit RGB and downscaled with a Lanczos filter so that its short side is
--short-side pixels (never upscaled), then written as PNG to train/ or val/.

The validation split is the fixed list VAL_IDS: the 8 photos that were the validation split
of the first pack (the 8 smallest SHA-256 of the id among its 53 photos), kept as they were
so that recorded validation numbers stay comparable. Every other photo is a training photo.

Evaluation overlap. The pixel hash of an image is the SHA-256 of its pixels decoded to 8-bit
RGB, row by row, 3 bytes per pixel, nothing else (grey images repeat the grey value in the
three channels): the pixel_sha256_rgb column of ../shared/eval/MANIFEST.tsv. Each source
image is hashed before any resizing, both as stored and after its EXIF rotation, and the
pack image too. When the evaluation manifest is present, a pack with any hash in common is
refused (nothing is written); a thumbnail comparison (aspect ratio and the correlation of 32x32 grey
thumbnails) against the evaluation images
themselves (when their files lie beside the manifest) also refuses near-identical copies,
such as a resized or re-encoded evaluation image. Duplicates inside the pack are refused the
same way.
"""

import argparse
import csv
import glob
import hashlib
import json
import os
import shutil
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

# The validation photos of the first pack, unchanged.
VAL_IDS = [
    "mate-aqua",
    "mate-wood",
    "mate-yellowflower",
    "plasma-bythewater",
    "plasma-eveningglow",
    "lomiri-aitzgorri",
    "lomiri-greentock",
    "lomiri-seeding",
]

# Two images count as the same photo when their aspect ratios agree within 3 % and their
# 32x32 grey thumbnails (zero mean, unit variance) correlate at NEAR_CORR or more.
NEAR_CORR = 0.95

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
    # budgie-backgrounds 3.0-1 (trixie): Files: * is CC0-1.0. Left out: ocean-waves (a print),
    # valley-midnight and waves-midnight (vector art), saturnian-profile (almost all black).
    ('budgie-abstract-spiral', 'budgie-backgrounds', 'usr/share/backgrounds/budgie/abstract-spiral.jpg', 'Budgie Desktop Developers', 'CC0-1.0'),
    ('budgie-beacon-street-sunset', 'budgie-backgrounds', 'usr/share/backgrounds/budgie/beacon-street-sunset.jpg', 'Budgie Desktop Developers', 'CC0-1.0'),
    ('budgie-blue-periwinkle', 'budgie-backgrounds', 'usr/share/backgrounds/budgie/blue-periwinkle.jpg', 'Budgie Desktop Developers', 'CC0-1.0'),
    ('budgie-canyon-wren', 'budgie-backgrounds', 'usr/share/backgrounds/budgie/canyon-wren.jpg', 'Budgie Desktop Developers', 'CC0-1.0'),
    ('budgie-casa-mila', 'budgie-backgrounds', 'usr/share/backgrounds/budgie/casa-mila.jpg', 'Budgie Desktop Developers', 'CC0-1.0'),
    ('budgie-extreme-desert-hike', 'budgie-backgrounds', 'usr/share/backgrounds/budgie/extreme-desert-hike.jpg', 'Budgie Desktop Developers', 'CC0-1.0'),
    ('budgie-high-trestle-trail', 'budgie-backgrounds', 'usr/share/backgrounds/budgie/high-trestle-trail.jpg', 'Budgie Desktop Developers', 'CC0-1.0'),
    ('budgie-lake-sherburne', 'budgie-backgrounds', 'usr/share/backgrounds/budgie/lake-sherburne.jpg', 'Budgie Desktop Developers', 'CC0-1.0'),
    ('budgie-oakland-zoo-otters', 'budgie-backgrounds', 'usr/share/backgrounds/budgie/oakland-zoo-otters.jpg', 'Budgie Desktop Developers', 'CC0-1.0'),
    ('budgie-perched-osprey', 'budgie-backgrounds', 'usr/share/backgrounds/budgie/perched-osprey.jpg', 'Budgie Desktop Developers', 'CC0-1.0'),
    ('budgie-piazza-gae-aulenti', 'budgie-backgrounds', 'usr/share/backgrounds/budgie/piazza-gae-aulenti.jpg', 'Budgie Desktop Developers', 'CC0-1.0'),
    ('budgie-roman-colosseum', 'budgie-backgrounds', 'usr/share/backgrounds/budgie/roman-colosseum.jpg', 'Budgie Desktop Developers', 'CC0-1.0'),
    ('budgie-singaporean-cityscape', 'budgie-backgrounds', 'usr/share/backgrounds/budgie/singaporean-cityscape.jpg', 'Budgie Desktop Developers', 'CC0-1.0'),
    ('budgie-tea-gardens', 'budgie-backgrounds', 'usr/share/backgrounds/budgie/tea-gardens.jpg', 'Budgie Desktop Developers', 'CC0-1.0'),
    # ubuntu-wallpapers-<release> 24.04.2 (noble): the licence is the one the package's copyright
    # file gives for the file (its own stanza, else Files: * = CC-BY-SA-3.0); author from the file
    # name. Illustrations, logos, renders, abstract images and one framed photo are left out (DATA.md).
    ('ubuntu-artful-bee-on-lavender', 'ubuntu-wallpapers-artful', 'usr/share/backgrounds/Bee_on_lavender_by_Martin.jpg', 'Martin', 'CC-BY-SA-2.0'),
    ('ubuntu-artful-bloom', 'ubuntu-wallpapers-artful', 'usr/share/backgrounds/Bloom_by_Victor_Madru.jpg', 'Victor Madru', 'CC-BY-SA-2.0'),
    ('ubuntu-artful-grand-canyon-north-rim', 'ubuntu-wallpapers-artful', 'usr/share/backgrounds/Grand_Canyon_North_Rim_by_Rihards_Vilks.jpg', 'Rihards Vilks', 'CC-BY-2.0'),
    ('ubuntu-artful-green-island', 'ubuntu-wallpapers-artful', 'usr/share/backgrounds/Green_Island_by_Radu_Galan.jpg', 'Radu Galan', 'CC-BY-SA-2.0'),
    ('ubuntu-artful-headstock', 'ubuntu-wallpapers-artful', 'usr/share/backgrounds/Headstock_by_Bernhard_Hanakam.jpg', 'Bernhard Hanakam', 'CC-BY-SA-2.0'),
    ('ubuntu-artful-lighthouse-at-sunrise', 'ubuntu-wallpapers-artful', 'usr/share/backgrounds/Lighthouse_at_sunrise_by_Frenchie_Smalls.jpg', 'Frenchie Smalls', 'CC-BY-SA-2.0'),
    ('ubuntu-artful-lily-of-the-valley', 'ubuntu-wallpapers-artful', 'usr/share/backgrounds/Lily_of_the_Valley_by_Robert_Slotte.jpg', 'Robert Slotte', 'CC-BY-SA-2.0'),
    ('ubuntu-artful-london-eye', 'ubuntu-wallpapers-artful', 'usr/share/backgrounds/London_Eye_by_Paul_Daniell.jpg', 'Paul Daniell', 'CC0'),
    ('ubuntu-artful-more-kamikochi', 'ubuntu-wallpapers-artful', 'usr/share/backgrounds/More_Kamikochi_by_mendhak.jpg', 'mendhak', 'CC-BY-SA-2.0'),
    ('ubuntu-artful-planking-is-going-against-the-grain', 'ubuntu-wallpapers-artful', 'usr/share/backgrounds/Planking_is_going_against_the_grain_by_mendhak.jpg', 'mendhak', 'CC-BY-SA-2.0'),
    ('ubuntu-artful-red-delight', 'ubuntu-wallpapers-artful', 'usr/share/backgrounds/Red_delight_by_Rishikesh_Gawade.jpg', 'Rishikesh Gawade', 'CC-BY-SA-2.0'),
    ('ubuntu-artful-sunrise-on-the-beach', 'ubuntu-wallpapers-artful', 'usr/share/backgrounds/Sunrise_on_the_beach_by_Luca_Ciavatta.jpg', 'Luca Ciavatta', 'CC-BY-SA-2.0'),
    ('ubuntu-artful-voss', 'ubuntu-wallpapers-artful', 'usr/share/backgrounds/Voss_by_fortuneblues.jpg', 'fortuneblues', 'CC0'),
    ('ubuntu-karmic-bay', 'ubuntu-wallpapers-karmic', 'usr/share/backgrounds/Bay.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-karmic-cherries', 'ubuntu-wallpapers-karmic', 'usr/share/backgrounds/Cherries.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-karmic-flordeloto', 'ubuntu-wallpapers-karmic', 'usr/share/backgrounds/FlordeLoto.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-karmic-frog', 'ubuntu-wallpapers-karmic', 'usr/share/backgrounds/Frog.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-karmic-grassina', 'ubuntu-wallpapers-karmic', 'usr/share/backgrounds/GrassinA.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-karmic-mistymorning', 'ubuntu-wallpapers-karmic', 'usr/share/backgrounds/MistyMorning.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-karmic-naranja', 'ubuntu-wallpapers-karmic', 'usr/share/backgrounds/Naranja.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-karmic-olife', 'ubuntu-wallpapers-karmic', 'usr/share/backgrounds/OLife.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-karmic-palmengarten', 'ubuntu-wallpapers-karmic', 'usr/share/backgrounds/Palmengarten.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-karmic-primulared', 'ubuntu-wallpapers-karmic', 'usr/share/backgrounds/PrimulaRed.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-karmic-radioactivesunrise', 'ubuntu-wallpapers-karmic', 'usr/share/backgrounds/RadioactiveSunrise.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-karmic-sand', 'ubuntu-wallpapers-karmic', 'usr/share/backgrounds/Sand.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-karmic-shoes', 'ubuntu-wallpapers-karmic', 'usr/share/backgrounds/Shoes.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-karmic-sunset', 'ubuntu-wallpapers-karmic', 'usr/share/backgrounds/Sunset.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-karmic-therainbowisdead', 'ubuntu-wallpapers-karmic', 'usr/share/backgrounds/TheRainbowisDead.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-karmic-throwingstones', 'ubuntu-wallpapers-karmic', 'usr/share/backgrounds/ThrowingStones.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-karmic-whiteorchid', 'ubuntu-wallpapers-karmic', 'usr/share/backgrounds/WhiteOrchid.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-lucid-bosquetk', 'ubuntu-wallpapers-lucid', 'usr/share/backgrounds/BosqueTK.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-lucid-cornered', 'ubuntu-wallpapers-lucid', 'usr/share/backgrounds/Cornered.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-lucid-curlsbycandy', 'ubuntu-wallpapers-lucid', 'usr/share/backgrounds/CurlsbyCandy.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-lucid-daisy', 'ubuntu-wallpapers-lucid', 'usr/share/backgrounds/Daisy.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-lucid-falldrops-ancientlight', 'ubuntu-wallpapers-lucid', 'usr/share/backgrounds/FallDrops,AncientLight.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-lucid-fluffodome', 'ubuntu-wallpapers-lucid', 'usr/share/backgrounds/Fluffodome.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-lucid-icystones2', 'ubuntu-wallpapers-lucid', 'usr/share/backgrounds/Icystones2.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-lucid-inthedarkredux', 'ubuntu-wallpapers-lucid', 'usr/share/backgrounds/InthedarkRedux.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-lucid-maraetaibeforesunrise', 'ubuntu-wallpapers-lucid', 'usr/share/backgrounds/Maraetaibeforesunrise.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-lucid-outoffocus', 'ubuntu-wallpapers-lucid', 'usr/share/backgrounds/Outoffocus.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-lucid-pointy', 'ubuntu-wallpapers-lucid', 'usr/share/backgrounds/Pointy.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-lucid-smoothmoment', 'ubuntu-wallpapers-lucid', 'usr/share/backgrounds/SmoothMoment.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-lucid-warmlights', 'ubuntu-wallpapers-lucid', 'usr/share/backgrounds/Warmlights.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-lucid-yellowflower', 'ubuntu-wallpapers-lucid', 'usr/share/backgrounds/Yellowflower.jpg', 'Ubuntu community contributors', 'CC-BY-SA-3.0'),
    ('ubuntu-maverick-aeg', 'ubuntu-wallpapers-maverick', 'usr/share/backgrounds/Aeg_by_Tauno_Erik.jpg', 'Tauno Erik', 'CC-BY-SA-3.0'),
    ('ubuntu-maverick-blue-box-number-2', 'ubuntu-wallpapers-maverick', 'usr/share/backgrounds/Blue_box_number_2_by_orb9220.jpg', 'orb9220', 'CC-BY-SA-3.0'),
    ('ubuntu-maverick-blue', 'ubuntu-wallpapers-maverick', 'usr/share/backgrounds/Blue_by_ElSlunko.jpg', 'ElSlunko', 'CC-BY-SA-3.0'),
    ('ubuntu-maverick-bubbles', 'ubuntu-wallpapers-maverick', 'usr/share/backgrounds/Bubbles_by_JanneM.jpg', 'JanneM', 'CC-BY-SA-3.0'),
    ('ubuntu-maverick-feather', 'ubuntu-wallpapers-maverick', 'usr/share/backgrounds/Feather_by_quinn.anya.jpg', 'quinn.anya', 'CC-BY-SA-3.0'),
    ('ubuntu-maverick-fern', 'ubuntu-wallpapers-maverick', 'usr/share/backgrounds/Fern_by_aalex04.jpg', 'aalex04', 'CC-BY-SA-3.0'),
    ('ubuntu-maverick-life', 'ubuntu-wallpapers-maverick', 'usr/share/backgrounds/Life_by_Paco_Espinoza.jpg', 'Paco Espinoza', 'CC-BY-SA-3.0'),
    ('ubuntu-maverick-liquid-glass', 'ubuntu-wallpapers-maverick', 'usr/share/backgrounds/Liquid_glass_by_matthileo.jpg', 'matthileo', 'CC-BY-SA-3.0'),
    ('ubuntu-maverick-mirada-perduda', 'ubuntu-wallpapers-maverick', 'usr/share/backgrounds/Mirada_Perduda_by_Marxicoli.jpg', 'Marxicoli', 'CC-BY-SA-3.0'),
    ('ubuntu-maverick-morning-ii', 'ubuntu-wallpapers-maverick', 'usr/share/backgrounds/Morning_II_by_Tadas_N.jpg', 'Tadas N', 'CC-BY-SA-3.0'),
    ('ubuntu-maverick-serenity-enchanted', 'ubuntu-wallpapers-maverick', 'usr/share/backgrounds/Serenity_Enchanted_by_sirpecangum.jpg', 'sirpecangum', 'CC-BY-SA-3.0'),
    ('ubuntu-maverick-smile', 'ubuntu-wallpapers-maverick', 'usr/share/backgrounds/Smile_by_quinn.anya.jpg', 'quinn.anya', 'CC-BY-SA-3.0'),
    ('ubuntu-maverick-spiral', 'ubuntu-wallpapers-maverick', 'usr/share/backgrounds/Spiral_by_firas.jpg', 'firas', 'CC-BY-SA-3.0'),
    ('ubuntu-natty-arboreal-ballet', 'ubuntu-wallpapers-natty', 'usr/share/backgrounds/Arboreal_ballet_by_Bob_Farrell.jpg', 'Bob Farrell', 'CC-BY-SA-3.0'),
    ('ubuntu-natty-berries', 'ubuntu-wallpapers-natty', 'usr/share/backgrounds/Berries_by_Orb9220.jpg', 'Orb9220', 'CC-BY-SA-3.0'),
    ('ubuntu-natty-fabric', 'ubuntu-wallpapers-natty', 'usr/share/backgrounds/Fabric_by_Just_Jeanette.jpg', 'Just Jeanette', 'CC-BY-SA-3.0'),
    ('ubuntu-natty-grey-day', 'ubuntu-wallpapers-natty', 'usr/share/backgrounds/Grey_day_by_Drew__.jpg', 'Drew  ', 'CC-BY-SA-3.0'),
    ('ubuntu-natty-holes', 'ubuntu-wallpapers-natty', 'usr/share/backgrounds/Holes_by_FireCobold.jpg', 'FireCobold', 'CC-BY-SA-3.0'),
    ('ubuntu-natty-ilunabarra-azkainetik', 'ubuntu-wallpapers-natty', 'usr/share/backgrounds/Ilunabarra_Azkainetik_by_Garuna_bor-bor.jpg', 'Garuna bor-bor', 'CC-BY-SA-3.0'),
    ('ubuntu-natty-la-no-alto', 'ubuntu-wallpapers-natty', 'usr/share/backgrounds/La_no_alto_by_Allyson_Souza.jpg', 'Allyson Souza', 'CC-BY-SA-3.0'),
    ('ubuntu-natty-quandro', 'ubuntu-wallpapers-natty', 'usr/share/backgrounds/Quandro_by_Tomas_Vasconcelo.jpg', 'Tomas Vasconcelo', 'CC-BY-SA-3.0'),
    ('ubuntu-natty-signpost', 'ubuntu-wallpapers-natty', 'usr/share/backgrounds/Signpost_by_maroubal2.jpg', 'maroubal2', 'CC-BY-SA-3.0'),
    ('ubuntu-natty-tiny-worlds', 'ubuntu-wallpapers-natty', 'usr/share/backgrounds/Tiny_Worlds_by_matthileo.jpg', 'matthileo', 'CC-BY-SA-3.0'),
    ('ubuntu-oneiric-dybblsbro-station', 'ubuntu-wallpapers-oneiric', 'usr/share/backgrounds/Dybbølsbro_Station_by_SirPecanGum.jpg', 'SirPecanGum', 'CC-BY-SA-3.0'),
    ('ubuntu-oneiric-jardinpolar', 'ubuntu-wallpapers-oneiric', 'usr/share/backgrounds/JardinPolar_by_CarmenGloria_Gonzalez.jpg', 'CarmenGloria Gonzalez', 'CC-BY-SA-3.0'),
    ('ubuntu-oneiric-langelinie-alle', 'ubuntu-wallpapers-oneiric', 'usr/share/backgrounds/Langelinie_Allé_by_SirPecanGum.jpg', 'SirPecanGum', 'CC-BY-SA-3.0'),
    ('ubuntu-oneiric-momiji-dream', 'ubuntu-wallpapers-oneiric', 'usr/share/backgrounds/Momiji_Dream_by_Deacon_MacMillan.jpg', 'Deacon MacMillan', 'CC-BY-SA-3.0'),
    ('ubuntu-oneiric-mount-snowdon-wales', 'ubuntu-wallpapers-oneiric', 'usr/share/backgrounds/Mount_Snowdon,_Wales_by_Adam_Vellender.jpg', 'Adam Vellender', 'CC-BY-SA-3.0'),
    ('ubuntu-oneiric-purpledancers', 'ubuntu-wallpapers-oneiric', 'usr/share/backgrounds/PurpleDancers_by_Emilio_Merlino.jpg', 'Emilio Merlino', 'CC-BY-SA-3.0'),
    ('ubuntu-oneiric-small-flowers', 'ubuntu-wallpapers-oneiric', 'usr/share/backgrounds/Small_flowers_by_Dariusz_Duma.jpg', 'Dariusz Duma', 'CC-BY-SA-3.0'),
    ('ubuntu-oneiric-the-grass-aint-greener', 'ubuntu-wallpapers-oneiric', 'usr/share/backgrounds/The_Grass_aint_Greener_by_fix_pena.jpg', 'fix pena', 'CC-BY-SA-3.0'),
    ('ubuntu-oneiric-wildwheat', 'ubuntu-wallpapers-oneiric', 'usr/share/backgrounds/WildWheat_by_Brian_Burt.jpg', 'Brian Burt', 'CC-BY-SA-3.0'),
    ('ubuntu-precise-delicate-petals', 'ubuntu-wallpapers-precise', 'usr/share/backgrounds/Delicate_Petals_by_lefthandgergo.jpg', 'lefthandgergo', 'CC-BY-SA-3.0'),
    ('ubuntu-precise-early-blossom', 'ubuntu-wallpapers-precise', 'usr/share/backgrounds/Early_Blossom_by_Dh0r.jpg', 'Dh0r', 'CC-BY-SA-3.0'),
    ('ubuntu-precise-flocking', 'ubuntu-wallpapers-precise', 'usr/share/backgrounds/Flocking_by_noombox.jpg', 'noombox', 'CC-BY-SA-3.0'),
    ('ubuntu-precise-floorboards', 'ubuntu-wallpapers-precise', 'usr/share/backgrounds/Floorboards_by_Dawid_Huczyński.jpg', 'Dawid Huczyński', 'CC-BY-SA-3.0'),
    ('ubuntu-precise-london-eye-from-beneath', 'ubuntu-wallpapers-precise', 'usr/share/backgrounds/London_Eye_From_Beneath_by_Fernando_García.jpg', 'Fernando García', 'CC-BY-SA-3.0'),
    ('ubuntu-precise-morning-dew', 'ubuntu-wallpapers-precise', 'usr/share/backgrounds/Morning_Dew_by_Lars_Clausen.jpg', 'Lars Clausen', 'CC-BY-SA-3.0'),
    ('ubuntu-precise-murales', 'ubuntu-wallpapers-precise', 'usr/share/backgrounds/Murales_by_Jan_Bencini.jpg', 'Jan Bencini', 'CC-BY-SA-3.0'),
    ('ubuntu-precise-speaker-weave', 'ubuntu-wallpapers-precise', 'usr/share/backgrounds/Speaker_Weave_by_Phil_Jackson.jpg', 'Phil Jackson', 'CC-BY-SA-3.0'),
    ('ubuntu-precise-the-forbidden-city', 'ubuntu-wallpapers-precise', 'usr/share/backgrounds/The_Forbidden_City_by_Daniel_Mathis.jpg', 'Daniel Mathis', 'CC-BY-SA-3.0'),
    ('ubuntu-precise-tie-my-boat', 'ubuntu-wallpapers-precise', 'usr/share/backgrounds/Tie_My_Boat_by_Ray_García.jpg', 'Ray García', 'CC-BY-SA-3.0'),
    ('ubuntu-precise-twilight-frost', 'ubuntu-wallpapers-precise', 'usr/share/backgrounds/Twilight_Frost_by_Phil_Jackson.jpg', 'Phil Jackson', 'CC-BY-SA-3.0'),
    ('ubuntu-precise-winter-morning', 'ubuntu-wallpapers-precise', 'usr/share/backgrounds/Winter_Morning_by_Shannon_Lucas.jpg', 'Shannon Lucas', 'CC-BY-SA-3.0'),
    ('ubuntu-quantal-below-clouds', 'ubuntu-wallpapers-quantal', 'usr/share/backgrounds/Below_Clouds_by_kobinho.jpg', 'kobinho', 'CC-BY-SA-3.0'),
    ('ubuntu-quantal-cairn', 'ubuntu-wallpapers-quantal', 'usr/share/backgrounds/Cairn_by_Sylvain_Naudin.jpg', 'Sylvain Naudin', 'CC-BY-SA-3.0'),
    ('ubuntu-quantal-early-morning', 'ubuntu-wallpapers-quantal', 'usr/share/backgrounds/Early_Morning_by_Robert_Katzki.jpg', 'Robert Katzki', 'CC-BY-SA-3.0'),
    ('ubuntu-quantal-frozen', 'ubuntu-wallpapers-quantal', 'usr/share/backgrounds/Frozen_by_fernando_garcila_redondo.jpg', 'fernando garcila redondo', 'CC-BY-SA-3.0'),
    ('ubuntu-quantal-gran-canaria', 'ubuntu-wallpapers-quantal', 'usr/share/backgrounds/Gran_Canaria_by_ALF.jpg', 'ALF', 'CC-BY-SA-3.0'),
    ('ubuntu-quantal-green-plant', 'ubuntu-wallpapers-quantal', 'usr/share/backgrounds/Green_Plant_by_Simon_Schlegl.jpg', 'Simon Schlegl', 'CC-BY-SA-3.0'),
    ('ubuntu-quantal-h', 'ubuntu-wallpapers-quantal', 'usr/share/backgrounds/H_by_Manuel_Sagredo.jpg', 'Manuel Sagredo', 'CC-BY-SA-3.0'),
    ('ubuntu-quantal-pantano-de-orellana', 'ubuntu-wallpapers-quantal', 'usr/share/backgrounds/Pantano_de_Orellana_by_mgarciaiz.jpg', 'mgarciaiz', 'CC-BY-SA-3.0'),
    ('ubuntu-quantal-roof-tiles', 'ubuntu-wallpapers-quantal', 'usr/share/backgrounds/Roof_Tiles_by_Finn_Sturdy.jpg', 'Finn Sturdy', 'CC-BY-SA-3.0'),
    ('ubuntu-quantal-vanishing', 'ubuntu-wallpapers-quantal', 'usr/share/backgrounds/Vanishing_by_James_Wilson.jpg', 'James Wilson', 'CC-BY-SA-3.0'),
    ('ubuntu-raring-blue-frost', 'ubuntu-wallpapers-raring', 'usr/share/backgrounds/Blue_frost_by_ppaabblloo77.jpg', 'ppaabblloo77', 'CC-BY-SA-3.0'),
    ('ubuntu-raring-brother-typewriter', 'ubuntu-wallpapers-raring', 'usr/share/backgrounds/Brother_typewriter_by_awdean1.jpg', 'awdean1', 'CC-BY-SA-3.0'),
    ('ubuntu-raring-fleurs-de-prunus-24', 'ubuntu-wallpapers-raring', 'usr/share/backgrounds/Fleurs_de_Prunus_2\uf0224_by_Jérôme_Boivin.jpg', 'Jérôme Boivin', 'CC-BY-SA-3.0'),
    ('ubuntu-raring-la-gomera', 'ubuntu-wallpapers-raring', 'usr/share/backgrounds/La_Gomera_by_Alfonso_Aguirre_Arbex.jpg', 'Alfonso Aguirre Arbex', 'CC-BY-SA-3.0'),
    ('ubuntu-raring-landing', 'ubuntu-wallpapers-raring', 'usr/share/backgrounds/Landing_by_Nic_Dahlquist.jpg', 'Nic Dahlquist', 'CC-BY-SA-3.0'),
    ('ubuntu-raring-last-breath', 'ubuntu-wallpapers-raring', 'usr/share/backgrounds/Last_breath…_by_Francisco_Javier_Epinoza_Pérez.jpg', 'Francisco Javier Epinoza Pérez', 'CC-BY-SA-3.0'),
    ('ubuntu-raring-leftover', 'ubuntu-wallpapers-raring', 'usr/share/backgrounds/Leftover_by_Sagar_Jain.jpg', 'Sagar Jain', 'CC-BY-SA-3.0'),
    ('ubuntu-raring-morning-sun-on-frost-covered-leaves', 'ubuntu-wallpapers-raring', 'usr/share/backgrounds/Morning_Sun_on_Frost-Covered_Leaves_by_Gary_A_Stafford.jpg', 'Gary A Stafford', 'CC-BY-SA-3.0'),
    ('ubuntu-raring-stop-the-light', 'ubuntu-wallpapers-raring', 'usr/share/backgrounds/Stop_the_light_by_Mato_Rachela.jpg', 'Mato Rachela', 'CC-BY-SA-3.0'),
    ('ubuntu-saucy-163', 'ubuntu-wallpapers-saucy', 'usr/share/backgrounds/163_by_e4v.jpg', 'e4v', 'CC-BY-SA-3.0'),
    ('ubuntu-saucy-cyclotron', 'ubuntu-wallpapers-saucy', 'usr/share/backgrounds/Cyclotron_by_cyclotron_beam.jpg', 'cyclotron beam', 'CC-BY-SA-3.0'),
    ('ubuntu-saucy-gota-d-agua', 'ubuntu-wallpapers-saucy', "usr/share/backgrounds/Gota_D'água_by_Eiti_Kimura.jpg", 'Eiti Kimura', 'CC-BY-SA-3.0'),
    ('ubuntu-saucy-grass', 'ubuntu-wallpapers-saucy', 'usr/share/backgrounds/Grass_by_Jeremy_Hill.jpg', 'Jeremy Hill', 'CC-BY-SA-3.0'),
    ('ubuntu-saucy-mountains', 'ubuntu-wallpapers-saucy', 'usr/share/backgrounds/Mountains_by_JamesPickles.jpg', 'JamesPickles', 'CC-BY-SA-3.0'),
    ('ubuntu-saucy-mr-tau-and-the-tree', 'ubuntu-wallpapers-saucy', 'usr/share/backgrounds/Mr._Tau_and_The_Tree_-_by_TJ.jpg', 'TJ', 'CC-BY-SA-3.0'),
    ('ubuntu-saucy-nylon-rainbow', 'ubuntu-wallpapers-saucy', 'usr/share/backgrounds/Nylon_Rainbow_by_Sam_Hewitt.jpg', 'Sam Hewitt', 'CC-BY-SA-3.0'),
    ('ubuntu-saucy-oak', 'ubuntu-wallpapers-saucy', 'usr/share/backgrounds/Oak_by_Lyle_Nel.jpg', 'Lyle Nel', 'CC-BY-SA-3.0'),
    ('ubuntu-saucy-savannah-lilian-blot', 'ubuntu-wallpapers-saucy', 'usr/share/backgrounds/Savannah_Lilian_Blot_by_a_Blot_on_the_landscape.jpg', 'a Blot on the landscape', 'CC-BY-SA-3.0'),
    ('ubuntu-saucy-the-out-standing', 'ubuntu-wallpapers-saucy', "usr/share/backgrounds/THE_'OUT'_STANDING_by_ydristi.jpg", 'ydristi', 'CC-BY-SA-3.0'),
    ('ubuntu-saucy-taxus-baccata', 'ubuntu-wallpapers-saucy', 'usr/share/backgrounds/Taxus_baccata_by_baubusiukas.jpg', 'baubusiukas', 'CC-BY-SA-3.0'),
    ('ubuntu-saucy-the-city-of-polen', 'ubuntu-wallpapers-saucy', 'usr/share/backgrounds/The_City_of_Polen_by_MilanVankovski.jpg', 'MilanVankovski', 'CC-BY-SA-3.0'),
    ('ubuntu-saucy-thingvellir', 'ubuntu-wallpapers-saucy', 'usr/share/backgrounds/Thingvellir_by_pattersa.jpg', 'pattersa', 'CC-BY-SA-3.0'),
    ('ubuntu-saucy-untitled', 'ubuntu-wallpapers-saucy', 'usr/share/backgrounds/Untitled_by_Garazi_Unzueta.jpg', 'Garazi Unzueta', 'CC-BY-SA-3.0'),
    ('ubuntu-saucy-water-lily', 'ubuntu-wallpapers-saucy', 'usr/share/backgrounds/Water_Lily_by_Denis_Dugushkin.jpg', 'Denis Dugushkin', 'CC-BY-SA-3.0'),
    ('ubuntu-trusty-backyard-mushrooms', 'ubuntu-wallpapers-trusty', 'usr/share/backgrounds/Backyard_Mushrooms_by_Kurt_Zitzelman.jpg', 'Kurt Zitzelman', 'CC-BY-SA-3.0'),
    ('ubuntu-trusty-beach', 'ubuntu-wallpapers-trusty', 'usr/share/backgrounds/Beach_by_Renato_Giordanelli.jpg', 'Renato Giordanelli', 'CC-BY-SA-3.0'),
    ('ubuntu-trusty-berries', 'ubuntu-wallpapers-trusty', 'usr/share/backgrounds/Berries_by_Tom_Kijas.jpg', 'Tom Kijas', 'CC-BY-SA-3.0'),
    ('ubuntu-trusty-foggy-forest', 'ubuntu-wallpapers-trusty', 'usr/share/backgrounds/Foggy_Forest_by_Jake_Stewart.jpg', 'Jake Stewart', 'CC-BY-SA-3.0'),
    ('ubuntu-trusty-forever', 'ubuntu-wallpapers-trusty', 'usr/share/backgrounds/Forever_by_Shady_S.jpg', 'Shady S', 'CC-BY-SA-3.0'),
    ('ubuntu-trusty-ibanez-infinity', 'ubuntu-wallpapers-trusty', 'usr/share/backgrounds/Ibanez_Infinity_by_Jaco_Kok.jpg', 'Jaco Kok', 'CC-BY-SA-3.0'),
    ('ubuntu-trusty-jelly-fish', 'ubuntu-wallpapers-trusty', 'usr/share/backgrounds/Jelly_Fish_by_RaDu_GaLaN.jpg', 'RaDu GaLaN', 'CC-BY-SA-3.0'),
    ('ubuntu-trusty-mono-lake', 'ubuntu-wallpapers-trusty', 'usr/share/backgrounds/Mono_Lake_by_Angela_Henderson.jpg', 'Angela Henderson', 'CC-BY-SA-3.0'),
    ('ubuntu-trusty-partitura', 'ubuntu-wallpapers-trusty', 'usr/share/backgrounds/Partitura_by_Vincijun.jpg', 'Vincijun', 'CC-BY-SA-3.0'),
    ('ubuntu-trusty-reflections', 'ubuntu-wallpapers-trusty', 'usr/share/backgrounds/Reflections_by_Trenton_Fox.jpg', 'Trenton Fox', 'CC-BY-SA-3.0'),
    ('ubuntu-trusty-water-web', 'ubuntu-wallpapers-trusty', 'usr/share/backgrounds/Water_web_by_Tom_Kijas.jpg', 'Tom Kijas', 'CC-BY-SA-3.0'),
    ('ubuntu-utopic-empty-space', 'ubuntu-wallpapers-utopic', 'usr/share/backgrounds/Empty_Space_by_Glenn_Rayat.jpg', 'Glenn Rayat', 'CC-BY-SA-3.0'),
    ('ubuntu-utopic-golden-leaves', 'ubuntu-wallpapers-utopic', 'usr/share/backgrounds/Golden_leaves_by_Mauro_Campanelli.jpg', 'Mauro Campanelli', 'CC-BY-SA-3.0'),
    ('ubuntu-utopic-horses-on-sand-dunes', 'ubuntu-wallpapers-utopic', 'usr/share/backgrounds/Horses_on_sand_dunes_by_Matthias_Siewert.jpg', 'Matthias Siewert', 'CC-BY-SA-3.0'),
    ('ubuntu-utopic-kronach-leuchtet-2014', 'ubuntu-wallpapers-utopic', 'usr/share/backgrounds/Kronach_leuchtet_2014_by_Brian_Fox.jpg', 'Brian Fox', 'CC-BY-SA-3.0'),
    ('ubuntu-utopic-music', 'ubuntu-wallpapers-utopic', 'usr/share/backgrounds/Music_by_tomasino.cz.jpg', 'tomasino.cz', 'CC-BY-SA-3.0'),
    ('ubuntu-utopic-night-seascape', 'ubuntu-wallpapers-utopic', 'usr/share/backgrounds/Night_Seascape_by_Davor_Dopar.jpg', 'Davor Dopar', 'CC-BY-SA-3.0'),
    ('ubuntu-utopic-redes-de-hilo', 'ubuntu-wallpapers-utopic', 'usr/share/backgrounds/Redes_de_hilo_by_Juan_Pablo_Lauriente.jpg', 'Juan Pablo Lauriente', 'CC-BY-SA-3.0'),
    ('ubuntu-utopic-sunny-autumn', 'ubuntu-wallpapers-utopic', 'usr/share/backgrounds/Sunny_Autumn_by_Joel_Heaps.jpg', 'Joel Heaps', 'CC-BY-SA-3.0'),
    ('ubuntu-utopic-warm-grasses', 'ubuntu-wallpapers-utopic', 'usr/share/backgrounds/Warm_grasses_by_dcsearle.t21.jpg', 'dcsearle.t21', 'CC-BY-SA-3.0'),
    ('ubuntu-utopic-salcantayperu', 'ubuntu-wallpapers-utopic', 'usr/share/backgrounds/salcantayperu_by_Life_Nomadic.jpg', 'Life Nomadic', 'CC-BY-SA-3.0'),
    ('ubuntu-utopic-xgu472hf2', 'ubuntu-wallpapers-utopic', 'usr/share/backgrounds/xgu472hf2_by_lariliikala.jpg', 'lariliikala', 'CC-BY-SA-3.0'),
    ('ubuntu-vivid-cedar-wax-wing', 'ubuntu-wallpapers-vivid', 'usr/share/backgrounds/Cedar_Wax_Wing_by_Raymond_Lavoie.jpg', 'Raymond Lavoie', 'CC-BY-SA-3.0'),
    ('ubuntu-vivid-christmas-lights', 'ubuntu-wallpapers-vivid', 'usr/share/backgrounds/Christmas_Lights_by_RaDu_GaLaN.jpg', 'RaDu GaLaN', 'CC-BY-SA-3.0'),
    ('ubuntu-vivid-euphoria', 'ubuntu-wallpapers-vivid', 'usr/share/backgrounds/Euphoria!_by_Tomasino.cz.jpg', 'Tomasino.cz', 'CC-BY-SA-3.0'),
    ('ubuntu-vivid-oyster-catcher-in-the-rocks', 'ubuntu-wallpapers-vivid', 'usr/share/backgrounds/Oyster_Catcher_in_the_Rocks_by_Raymond_Lavoie.jpg', 'Raymond Lavoie', 'CC-BY-SA-3.0'),
    ('ubuntu-vivid-polka-dots-and-moonbeams', 'ubuntu-wallpapers-vivid', 'usr/share/backgrounds/Polka_Dots_and_Moonbeams_by_SirPecanGum.jpg', 'SirPecanGum', 'CC-BY-SA-3.0'),
    ('ubuntu-vivid-primavera', 'ubuntu-wallpapers-vivid', 'usr/share/backgrounds/Primavera_by_Vivian_Morales.jpg', 'Vivian Morales', 'CC-BY-SA-3.0'),
    ('ubuntu-vivid-tenerife-roques-de-anaga', 'ubuntu-wallpapers-vivid', 'usr/share/backgrounds/Tenerife_Roques_de_Anaga_by_Frederik_Schulz.jpg', 'Frederik Schulz', 'CC-BY-SA-3.0'),
    ('ubuntu-vivid-tesla', 'ubuntu-wallpapers-vivid', 'usr/share/backgrounds/Tesla_by_Tomasino.cz.jpg', 'Tomasino.cz', 'CC-BY-SA-3.0'),
    ('ubuntu-vivid-traviny', 'ubuntu-wallpapers-vivid', 'usr/share/backgrounds/Traviny_by_Tomasino.cz.jpg', 'Tomasino.cz', 'CC-BY-SA-3.0'),
    ('ubuntu-wily-breaker', 'ubuntu-wallpapers-wily', 'usr/share/backgrounds/Breaker_by_Lyle_Nel.jpg', 'Lyle Nel', 'CC-BY-SA-3.0'),
    ('ubuntu-wily-hotel', 'ubuntu-wallpapers-wily', 'usr/share/backgrounds/Hotel_by_sarcasmrules2011.jpg', 'sarcasmrules2011', 'CC-BY-SA-3.0'),
    ('ubuntu-wily-light-my-fire-evening-sun', 'ubuntu-wallpapers-wily', 'usr/share/backgrounds/Light_my_fire_evening_sun_by_Dariusz_Duma.jpg', 'Dariusz Duma', 'CC-BY-SA-3.0'),
    ('ubuntu-wily-mediterranean-sea', 'ubuntu-wallpapers-wily', 'usr/share/backgrounds/Mediterranean_Sea_by_simosx.jpg', 'simosx', 'CC-BY-SA-3.0'),
    ('ubuntu-wily-moss-inflorescence', 'ubuntu-wallpapers-wily', 'usr/share/backgrounds/Moss_inflorescence_by_carmelo75.jpg', 'carmelo75', 'CC-BY-SA-3.0'),
    ('ubuntu-wily-sitting-here-making-fun', 'ubuntu-wallpapers-wily', 'usr/share/backgrounds/Sitting_Here,_Making_Fun_by_Philipp_Haegi.jpg', 'Philipp Haegi', 'CC-BY-SA-3.0'),
    ('ubuntu-wily-tramonto-a-scalea', 'ubuntu-wallpapers-wily', 'usr/share/backgrounds/Tramonto_a_Scalea_by_Renatvs88.jpg', 'Renatvs88', 'CC-BY-SA-3.0'),
    ('ubuntu-wily-tranquil', 'ubuntu-wallpapers-wily', 'usr/share/backgrounds/Tranquil_by_Pat_David.jpg', 'Pat David', 'CC-BY-SA-3.0'),
    ('ubuntu-xenial-cielo-estrellado', 'ubuntu-wallpapers-xenial', 'usr/share/backgrounds/Cielo_estrellado_by_Eduardo_Diez_Viñuela.jpg', 'Eduardo Diez Viñuela', 'CC-BY-SA-2.0'),
    ('ubuntu-xenial-dans-ma-bulle', 'ubuntu-wallpapers-xenial', 'usr/share/backgrounds/Dans_ma_bulle_by_Christophe_Weibel.jpg', 'Christophe Weibel', 'CC-BY-SA-2.0'),
    ('ubuntu-xenial-flora', 'ubuntu-wallpapers-xenial', 'usr/share/backgrounds/Flora_by_Marek_Koteluk.jpg', 'Marek Koteluk', 'CC-BY-SA-2.0'),
    ('ubuntu-xenial-icy-grass', 'ubuntu-wallpapers-xenial', 'usr/share/backgrounds/Icy_Grass_by_Raymond_Lavoie.jpg', 'Raymond Lavoie', 'CC-BY-SA-2.0'),
    ('ubuntu-xenial-night-lights', 'ubuntu-wallpapers-xenial', 'usr/share/backgrounds/Night_lights_by_Alberto_Salvia_Novella.jpg', 'Alberto Salvia Novella', 'CC-BY-SA-2.0'),
    ('ubuntu-xenial-spring', 'ubuntu-wallpapers-xenial', 'usr/share/backgrounds/Spring_by_Peter_Apas.jpg', 'Peter Apas', 'CC-BY-2.0'),
    ('ubuntu-xenial-tcp118v1', 'ubuntu-wallpapers-xenial', 'usr/share/backgrounds/TCP118v1_by_Tiziano_Consonni.jpg', 'Tiziano Consonni', 'CC-BY-SA-2.0'),
    ('ubuntu-xenial-the-land-of-edonias', 'ubuntu-wallpapers-xenial', 'usr/share/backgrounds/The_Land_of_Edonias_by_Γιωργος_Αργυροπουλος.jpg', 'Γιωργος Αργυροπουλος', 'CC-BY-2.0'),
    ('ubuntu-xenial-clock', 'ubuntu-wallpapers-xenial', 'usr/share/backgrounds/clock_by_Bernhard_Hanakam.jpg', 'Bernhard Hanakam', 'CC-BY-SA-2.0'),
    ('ubuntu-xenial-passion-flower', 'ubuntu-wallpapers-xenial', 'usr/share/backgrounds/passion_flower_by_Irene_Gr.jpg', 'Irene Gr', 'CC-BY-SA-2.0'),
    ('ubuntu-yakkety-alien-wing', 'ubuntu-wallpapers-yakkety', 'usr/share/backgrounds/Alien_wing_by_Ralph_Crützen.jpg', 'Ralph Crützen', 'CC-BY-SA-2.0'),
    ('ubuntu-yakkety-classic-guitar-detail', 'ubuntu-wallpapers-yakkety', 'usr/share/backgrounds/Classic_Guitar_Detail_by_Sten_Jørgen_Pettersen.jpg', 'Sten Jørgen Pettersen', 'CC-BY-SA-2.0'),
    ('ubuntu-yakkety-dsc3907', 'ubuntu-wallpapers-yakkety', 'usr/share/backgrounds/DSC3907_by_Todor_Velichkov.jpg', 'Todor Velichkov', 'CC-BY-SA-2.0'),
    ('ubuntu-yakkety-haukland-beach-view', 'ubuntu-wallpapers-yakkety', 'usr/share/backgrounds/Haukland_Beach_view_by_Michele_Agostini.jpg', 'Michele Agostini', 'CC-BY-SA-2.0'),
    ('ubuntu-yakkety-img-0081', 'ubuntu-wallpapers-yakkety', 'usr/share/backgrounds/IMG_0081_by_Jobin_Babu.jpg', 'Jobin Babu', 'CC-BY-SA-2.0'),
    ('ubuntu-yakkety-img-7632', 'ubuntu-wallpapers-yakkety', 'usr/share/backgrounds/IMG_7632_by_Jobin_Babu.jpg', 'Jobin Babu', 'CC-BY-SA-2.0'),
    ('ubuntu-yakkety-p1310728', 'ubuntu-wallpapers-yakkety', 'usr/share/backgrounds/P1310728_by_Ferran_Reyes.jpg', 'Ferran Reyes', 'CC-BY-SA-2.0'),
    ('ubuntu-yakkety-wanaka-tree', 'ubuntu-wallpapers-yakkety', 'usr/share/backgrounds/Wanaka_Tree_by_Stephane_Pakula.jpg', 'Stephane Pakula', 'CC-BY-SA-2.0'),
    ('ubuntu-yakkety-yala-mountain', 'ubuntu-wallpapers-yakkety', 'usr/share/backgrounds/Yala_mountain_by_Geza_Radics.jpg', 'Geza Radics', 'CC0'),
    ('ubuntu-yakkety-larung-gar', 'ubuntu-wallpapers-yakkety', 'usr/share/backgrounds/larung_gar_by_night_by_Geza_Radics.jpg', 'night by Geza Radics', 'CC0'),
    ('ubuntu-zesty-a-star-has-fallen', 'ubuntu-wallpapers-zesty', 'usr/share/backgrounds/A_star_has_fallen_by_Juan_Pablo_Lauriente.jpg', 'Juan Pablo Lauriente', 'CC-BY-SA-2.0'),
    ('ubuntu-zesty-candy', 'ubuntu-wallpapers-zesty', 'usr/share/backgrounds/Candy_by_Bernhard_Hanakam.jpg', 'Bernhard Hanakam', 'CC-BY-SA-2.0'),
    ('ubuntu-zesty-forest', 'ubuntu-wallpapers-zesty', 'usr/share/backgrounds/Forest_by_Moritz_Reisinger.jpg', 'Moritz Reisinger', 'CC-BY-SA-2.0'),
    ('ubuntu-zesty-mushrooms-3', 'ubuntu-wallpapers-zesty', 'usr/share/backgrounds/Mushrooms_3_by_moritzmhmk.jpg', 'moritzmhmk', 'CC-BY-SA-2.0'),
    ('ubuntu-zesty-pink-and-blue', 'ubuntu-wallpapers-zesty', 'usr/share/backgrounds/Pink_and_Blue_by_Ashwin_Deshpande.jpg', 'Ashwin Deshpande', 'CC-BY-SA-2.0'),
    ('ubuntu-zesty-purple-daisy', 'ubuntu-wallpapers-zesty', 'usr/share/backgrounds/Purple_Daisy_by_Maria_Scotto.jpg', 'Maria Scotto', 'CC-BY-SA-2.0'),
    ('ubuntu-zesty-road-to-nowhere', 'ubuntu-wallpapers-zesty', 'usr/share/backgrounds/Road_to_Nowhere_by_Matt_Bailey.jpg', 'Matt Bailey', 'CC-BY-2.0'),
    ('ubuntu-zesty-seebrucke-graal-muritz', 'ubuntu-wallpapers-zesty', 'usr/share/backgrounds/Seebrücke_Graal-Müritz_by_Oliver_hb.jpg', 'Oliver hb', 'CC-BY-2.0'),
    ('ubuntu-zesty-some-light-reading', 'ubuntu-wallpapers-zesty', 'usr/share/backgrounds/Some_Light_Reading_by_Brandilyn_Carpenter.jpg', 'Brandilyn Carpenter', 'CC-BY-SA-2.0'),
    # ubuntu-gnome-wallpapers-trusty 16.10.4: per-file stanzas, CC-BY-SA-4.0 (wonders-of-nature
    # left out: an abstract bokeh image).
    ('ugnome-alameda', 'ubuntu-gnome-wallpapers-trusty', 'usr/share/backgrounds/ubuntu-gnome/ubuntu-gnome-alameda.jpg', 'Siddhart K', 'CC-BY-SA-4.0'),
    ('ugnome-alcazar-de-segovia', 'ubuntu-gnome-wallpapers-trusty', 'usr/share/backgrounds/ubuntu-gnome/ubuntu-gnome-alcazar-de-segovia.jpg', 'Fernando García', 'CC-BY-SA-4.0'),
    ('ugnome-ayllon', 'ubuntu-gnome-wallpapers-trusty', 'usr/share/backgrounds/ubuntu-gnome/ubuntu-gnome-ayllon.jpg', 'Fernando García', 'CC-BY-SA-4.0'),
    ('ugnome-path-to-heaven', 'ubuntu-gnome-wallpapers-trusty', 'usr/share/backgrounds/ubuntu-gnome/ubuntu-gnome-path-to-heaven.jpg', 'detlef-kuonen', 'CC-BY-SA-4.0'),
    ('ugnome-ragusa-lbla', 'ubuntu-gnome-wallpapers-trusty', 'usr/share/backgrounds/ubuntu-gnome/ubuntu-gnome-ragusa-lbla.jpg', 'Fernando Garcia', 'CC-BY-SA-4.0'),
    ('ugnome-segesta', 'ubuntu-gnome-wallpapers-trusty', 'usr/share/backgrounds/ubuntu-gnome/ubuntu-gnome-segesta.jpg', 'Fernando Garcia', 'CC-BY-SA-4.0'),
    ('ugnome-sunrise-at-the-eiffel-tower', 'ubuntu-gnome-wallpapers-trusty', 'usr/share/backgrounds/ubuntu-gnome/ubuntu-gnome-sunrise-at-the-eiffel-tower.jpg', 'Mark Carline', 'CC-BY-SA-4.0'),
    # ubuntu-mate-wallpapers-photos 24.04.0: per-file stanzas, CC-BY-SA-4.0.
    ('umate-andrew-ridley', 'ubuntu-mate-wallpapers-photos', 'usr/share/backgrounds/ubuntu-mate-photos/andrew-ridley-54228.jpg', 'Andrew Ridley', 'CC-BY-SA-4.0'),
    ('umate-gabriele-diwald', 'ubuntu-mate-wallpapers-photos', 'usr/share/backgrounds/ubuntu-mate-photos/gabriele-diwald-201135.jpg', 'Gabriele Diwald', 'CC-BY-SA-4.0'),
    ('umate-johann-siemens', 'ubuntu-mate-wallpapers-photos', 'usr/share/backgrounds/ubuntu-mate-photos/johann-siemens-591.jpg', 'Johann Siemens', 'CC-BY-SA-4.0'),
    ('umate-kristopher-roller', 'ubuntu-mate-wallpapers-photos', 'usr/share/backgrounds/ubuntu-mate-photos/kristopher-roller-110203.jpg', 'Kristopher Roller', 'CC-BY-SA-4.0'),
    ('umate-matteo-botto', 'ubuntu-mate-wallpapers-photos', 'usr/share/backgrounds/ubuntu-mate-photos/matteo-botto-16023.jpg', 'Matteo Botto', 'CC-BY-SA-4.0'),
    ('umate-nasa', 'ubuntu-mate-wallpapers-photos', 'usr/share/backgrounds/ubuntu-mate-photos/nasa-53884.jpg', 'NASA', 'CC-BY-SA-4.0'),
    ('umate-nattu-adnan', 'ubuntu-mate-wallpapers-photos', 'usr/share/backgrounds/ubuntu-mate-photos/nattu-adnan-328570.jpg', 'Nattu Adan', 'CC-BY-SA-4.0'),
    ('umate-sebastian-muller', 'ubuntu-mate-wallpapers-photos', 'usr/share/backgrounds/ubuntu-mate-photos/sebastian-muller-52.jpg', 'Sebastian Muller', 'CC-BY-SA-4.0'),
    ('umate-stefan-stefancik', 'ubuntu-mate-wallpapers-photos', 'usr/share/backgrounds/ubuntu-mate-photos/stefan-stefancik-105374.jpg', 'Štefan Štefančík', 'CC-BY-SA-4.0'),
    ('umate-tommy-lisbin', 'ubuntu-mate-wallpapers-photos', 'usr/share/backgrounds/ubuntu-mate-photos/tommy-lisbin-189189.jpg', 'Tommy Lisbin', 'CC-BY-SA-4.0'),
    # xubuntu-community-wallpapers-trusty 22.04.0: per-file stanzas; 'CC-BY-SA' whose text in
    # the same file is Creative Commons Attribution-ShareAlike 3.0 Unported.
    ('xubuntu-balance', 'xubuntu-community-wallpapers-trusty', 'usr/share/xfce4/backdrops/balance.jpg', 'Gavin Ash', 'CC-BY-SA-3.0'),
    ('xubuntu-bubbles', 'xubuntu-community-wallpapers-trusty', 'usr/share/xfce4/backdrops/bubbles.jpg', 'Francisco Villarroel', 'CC-BY-SA-3.0'),
    ('xubuntu-cloudbreaker', 'xubuntu-community-wallpapers-trusty', 'usr/share/xfce4/backdrops/cloudbreaker.jpg', "Kayden D'Mello", 'CC-BY-SA-3.0'),
    ('xubuntu-justrocks', 'xubuntu-community-wallpapers-trusty', 'usr/share/xfce4/backdrops/justrocks.jpg', 'Simon Steinbeiß', 'CC-BY-SA-3.0'),
    ('xubuntu-solitude', 'xubuntu-community-wallpapers-trusty', 'usr/share/xfce4/backdrops/solitude.jpg', 'Gavin Ash', 'CC-BY-SA-3.0'),
    ('xubuntu-traslasierra', 'xubuntu-community-wallpapers-trusty', 'usr/share/xfce4/backdrops/traslasierra.jpg', 'Adrian Felipe Pera', 'CC-BY-SA-3.0'),
]


def deb_versions(debs):
    out = {}
    for deb in sorted(glob.glob(os.path.join(debs, "*.deb"))):
        fields = subprocess.run(
            ["dpkg-deb", "-f", deb, "Package", "Version"], check=True, capture_output=True, text=True
        ).stdout
        kv = dict(line.split(": ", 1) for line in fields.strip().splitlines())
        out.setdefault(kv["Package"], []).append(kv["Version"])
    return {p: " ".join(sorted(v)) for p, v in out.items()}


def pixel_sha256(im):
    """SHA-256 of the 8-bit RGB pixels, row-major, as in the eval manifest."""
    return hashlib.sha256(im.convert("RGB").tobytes()).hexdigest()


def thumb(im):
    """(aspect ratio, normalised 32x32 grey thumbnail as a list of 1024 floats)."""
    w, h = im.size
    g = list(im.convert("L").resize((32, 32), Image.LANCZOS).tobytes())
    m = sum(g) / len(g)
    sd = (sum((v - m) ** 2 for v in g) / len(g)) ** 0.5 or 1.0
    return w / h, [(v - m) / sd for v in g]


def similarity(a, b):
    """Correlation of two thumbnails, or -1 when the aspect ratios differ by more than 3 %."""
    if abs(a[0] - b[0]) > 0.03 * max(a[0], b[0]):
        return -1.0
    return sum(x * y for x, y in zip(a[1], b[1])) / len(a[1])


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def source_path(args, pkg, rel):
    return os.path.join(args.skimage, rel) if pkg == SKI else os.path.join(args.root, pkg, rel)


def load_eval(path):
    """(hash -> 'set/file', [(thumbnail, 'set/file')]) of the evaluation images, or None."""
    if not path or not os.path.isfile(path):
        return None
    hashes, thumbs = {}, []
    base = os.path.dirname(path)
    with open(path, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            name = f"{row['set']}/{row['file']}"
            hashes[row["pixel_sha256_rgb"].lower()] = name
            img = os.path.join(base, row["set"], row["file"])
            if os.path.isfile(img):
                with Image.open(img) as im:
                    thumbs.append((thumb(im), name))
    return {"path": path, "sha256": file_sha256(path), "hashes": hashes, "thumbs": thumbs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--debs", required=True)
    ap.add_argument("--root", required=True, help="one folder per package: ROOT/PACKAGE/usr/...")
    ap.add_argument("--skimage", required=True)
    ap.add_argument("--skimage-version", required=True)
    ap.add_argument("--lock", required=True, help="sha256sum-style list of every source file")
    ap.add_argument("--write-lock", action="store_true", help="(re)write --lock instead of checking it")
    ap.add_argument("--eval-manifest", default="", help="../shared/eval/MANIFEST.tsv; checked when present")
    ap.add_argument("--out", required=True)
    ap.add_argument("--short-side", type=int, default=384)
    args = ap.parse_args()

    ids = [p[0] for p in PHOTOS]
    if len(set(ids)) != len(ids):
        sys.exit("duplicate photo id")
    missing_val = set(VAL_IDS) - set(ids)
    if missing_val:
        sys.exit(f"validation photos missing from the list: {sorted(missing_val)}")

    versions = deb_versions(args.debs)
    versions[SKI] = args.skimage_version

    # 1. Every source file is there and is the pinned one.
    missing = [source_path(args, pkg, rel) for _, pkg, rel, _, _ in PHOTOS]
    missing = [m for m in missing if not os.path.isfile(m)]
    if missing:
        sys.exit("missing source files (package version changed?):\n  " + "\n  ".join(missing))
    sums = {pid: file_sha256(source_path(args, pkg, rel)) for pid, pkg, rel, _, _ in PHOTOS}
    if args.write_lock:
        with open(args.lock, "w") as f:
            for pid, pkg, rel, _, _ in PHOTOS:
                f.write(f"{sums[pid]}  {pkg}/{rel}\n")
        print(f"wrote {args.lock} ({len(PHOTOS)} files)", file=sys.stderr)
    lock = {}
    with open(args.lock, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                digest, name = line.rstrip("\n").split("  ", 1)
                lock[name] = digest
    bad = []
    for pid, pkg, rel, _, _ in PHOTOS:
        want = lock.get(f"{pkg}/{rel}")
        if want is None:
            bad.append(f"{pkg}/{rel}: not in {args.lock}")
        elif want != sums[pid]:
            bad.append(f"{pkg}/{rel}: SHA-256 {sums[pid]} is not the pinned {want}")
    if bad:
        sys.exit("source files differ from the pinned ones:\n  " + "\n  ".join(bad))

    evalset = load_eval(args.eval_manifest)
    if evalset is None:
        print(f"warning: no evaluation manifest at {args.eval_manifest!r}; overlap not checked", file=sys.stderr)

    # 2. Decode, hash and resize everything in memory; nothing is written before all checks pass.
    entries, images, thumbs, problems = [], {}, {}, []
    for pid, pkg, rel, author, licence in PHOTOS:
        src = source_path(args, pkg, rel)
        with Image.open(src) as im:
            im.load()
            stored = pixel_sha256(im)
            oriented_im = ImageOps.exif_transpose(im)
            oriented = pixel_sha256(oriented_im)
            orig = oriented_im.size
            # Palette and alpha images: keep the colour channels.
            rgb = oriented_im.convert("RGB")
        th = thumb(rgb)
        w, h = rgb.size
        scale = args.short_side / min(w, h)
        out_im = rgb.resize((round(w * scale), round(h * scale)), Image.LANCZOS) if scale < 1.0 else rgb
        split = "val" if pid in VAL_IDS else "train"
        e = {
            "id": pid,
            "split": split,
            "file": f"{split}/{pid}.png",
            "package": pkg,
            "version": versions.get(pkg, "?"),
            "path": rel,
            "author": author,
            "licence": licence,
            "source_sha256": sums[pid],
            "source_pixel_sha256_rgb": stored,
            "original_size": list(orig),
            "size": list(out_im.size),
            "pixel_sha256_rgb": pixel_sha256(out_im),
        }
        if oriented != stored:
            e["source_pixel_sha256_rgb_oriented"] = oriented
        entries.append(e)
        images[pid] = out_im
        thumbs[pid] = th
        print(f"{split:5} {pid:44} {orig[0]}x{orig[1]} -> {out_im.size[0]}x{out_im.size[1]}", file=sys.stderr)

    # 3. Overlap with the evaluation images, and duplicates inside the pack.
    max_eval_corr = None
    for e in entries:
        hs = {e["source_pixel_sha256_rgb"], e["pixel_sha256_rgb"], e.get("source_pixel_sha256_rgb_oriented", "")}
        if evalset is not None:
            for hsh in hs:
                if hsh in evalset["hashes"]:
                    problems.append(f"{e['id']}: same pixels as evaluation image {evalset['hashes'][hsh]}")
            for eth, name in evalset["thumbs"]:
                c = similarity(thumbs[e["id"]], eth)
                max_eval_corr = c if max_eval_corr is None else max(max_eval_corr, c)
                if c >= NEAR_CORR:
                    problems.append(f"{e['id']}: near-identical to evaluation image {name} (thumbnail correlation {c:.3f})")
    seen = {}
    for e in entries:
        h = e["source_pixel_sha256_rgb"]
        if h in seen:
            problems.append(f"{e['id']}: same pixels as {seen[h]}")
        seen[h] = e["id"]
    for i, a in enumerate(entries):
        for b in entries[i + 1:]:
            c = similarity(thumbs[a["id"]], thumbs[b["id"]])
            if c >= NEAR_CORR:
                problems.append(f"{a['id']} and {b['id']}: near-identical (thumbnail correlation {c:.3f})")
    if problems:
        sys.exit("refusing to write the pack:\n  " + "\n  ".join(problems))

    # 4. Write into a fresh folder beside the pack, then swap it in.
    tmp = args.out.rstrip("/") + ".new"
    shutil.rmtree(tmp, ignore_errors=True)
    for split in ("train", "val"):
        os.makedirs(os.path.join(tmp, split))
    for e in entries:
        dst = os.path.join(tmp, e["file"])
        images[e["id"]].save(dst, optimize=False)
        e["file_sha256"] = file_sha256(dst)

    manifest = {
        "short_side": args.short_side,
        "counts": {s: sum(e["split"] == s for e in entries) for s in ("train", "val")},
        "versions": versions,
        "pixel_hash": "sha256 of the 8-bit RGB pixels, row-major, 3 bytes per pixel (as pixel_sha256_rgb in the eval MANIFEST.tsv)",
        "eval_check": None
        if evalset is None
        else {
            "manifest": evalset["path"],
            "manifest_sha256": evalset["sha256"],
            "images": len(evalset["hashes"]),
            "images_compared_by_thumbnail": len(evalset["thumbs"]),
            "pixel_hash_matches": 0,
            "near_duplicate_threshold": NEAR_CORR,
            "max_thumbnail_correlation_to_eval": None if max_eval_corr is None else round(max_eval_corr, 4),
        },
        "photos": entries,
    }
    with open(os.path.join(tmp, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    old = args.out.rstrip("/") + ".old"
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(args.out):
        os.rename(args.out, old)
    os.rename(tmp, args.out)
    shutil.rmtree(old, ignore_errors=True)
    print(f"pack: {args.out} ({manifest['counts']})", file=sys.stderr)


if __name__ == "__main__":
    main()
