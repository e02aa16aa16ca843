# Runs inside gimp-console-3.0 (python-fu-eval), driven by tests/shims/gimp-test.sh.
# Calls plug-in-vml-restore through the PDB the way a script would, saves the results and
# writes what it saw to $VML_TEST_OUT/results.json; the shell script checks the files.
import json
import os
import traceback

import gi

gi.require_version('Gimp', '3.0')
from gi.repository import Gimp, Gio  # noqa: E402

OUT = os.environ['VML_TEST_OUT']
SRC = os.environ['VML_TEST_IMG']
METHOD = os.environ.get('VML_TEST_METHOD', 'classical')
SEL = [int(v) for v in os.environ['VML_TEST_SEL'].split(',')]  # x, y, w, h
results = {}


def save_results():
    with open(os.path.join(OUT, 'results.json'), 'w') as f:
        json.dump(results, f, indent=1)


def load():
    return Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(SRC))


def call(image, layer, **args):
    proc = Gimp.get_pdb().lookup_procedure('plug-in-vml-restore')
    if proc is None:
        raise RuntimeError('plug-in-vml-restore is not registered')
    cfg = proc.create_config()
    cfg.set_property('run-mode', Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property('image', image)
    cfg.set_core_object_array('drawables', [layer])
    for k, v in args.items():
        cfg.set_property(k.replace('_', '-'), v)
    rv = proc.run(cfg)
    status = rv.index(0)
    message = ''
    if status != Gimp.PDBStatusType.SUCCESS and rv.length() > 1:
        message = str(rv.index(1))
    return status.value_nick, message


def registration():
    proc = Gimp.get_pdb().lookup_procedure('plug-in-vml-restore')
    return {'menu_paths': list(proc.get_menu_paths()), 'menu_label': proc.get_menu_label(),
            'image_types': proc.get_image_types(),
            'arguments': [a.get_name() for a in proc.get_arguments()]}


def mean_value(drawable):
    ok, mean, std, *_ = drawable.histogram(Gimp.HistogramChannel.VALUE, 0.0, 1.0)
    return [mean, std]


def describe(image):
    return {'width': image.get_width(), 'height': image.get_height(),
            'layers': [(lay.get_name(), lay.get_width(), lay.get_height())
                       for lay in image.get_layers()]}


def case(name, fn):
    try:
        results[name] = fn()
    except Exception:
        results[name] = {'exception': traceback.format_exc()}
    save_results()


def inpaint():
    img = load()
    layer = img.get_layers()[0]
    x, y, w, h = SEL
    img.select_rectangle(Gimp.ChannelOps.REPLACE, x, y, w, h)
    status, msg = call(img, layer, task='inpaint', method=METHOD, seed=1)
    r = {'status': status, 'message': msg}
    r.update(describe(img))
    r['selection_kept'] = not Gimp.Selection.is_empty(img)
    Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, img,
                   Gio.File.new_for_path(os.path.join(OUT, 'inpaint.png')), None)
    # Undo must remove everything the plug-in did in one step: the new layer.
    r['undo_enabled'] = img.undo_is_enabled()
    img.delete()
    return r


def sr2():
    img = load()
    layer = img.get_layers()[0]
    before = mean_value(layer)
    status, msg = call(img, layer, task='sr2', method=METHOD, quality='fast')
    r = {'status': status, 'message': msg}
    r.update(describe(img))
    r['mean_std_before'] = before
    r['mean_std_after'] = mean_value(img.get_layers()[0])
    Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, img,
                   Gio.File.new_for_path(os.path.join(OUT, 'sr2.png')), None)
    img.delete()
    return r


def denoise_in_selection():
    img = load()
    layer = img.get_layers()[0]
    x, y, w, h = SEL
    img.select_rectangle(Gimp.ChannelOps.REPLACE, x, y, w, h)
    status, msg = call(img, layer, task='denoise', denoise_strength=0.2, method=METHOD)
    r = {'status': status, 'message': msg}
    r.update(describe(img))
    Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, img,
                   Gio.File.new_for_path(os.path.join(OUT, 'denoise.png')), None)
    img.delete()
    return r


def deblur_motion_in_selection():
    # The kernel arguments (motion: length and angle) reach vml-filter; the selection limits it.
    img = load()
    layer = img.get_layers()[0]
    x, y, w, h = SEL
    img.select_rectangle(Gimp.ChannelOps.REPLACE, x, y, w, h)
    status, msg = call(img, layer, task='deblur', deblur_kernel='motion', deblur_size=5.0,
                       motion_angle=30.0, method=METHOD)
    r = {'status': status, 'message': msg}
    r.update(describe(img))
    Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, img,
                   Gio.File.new_for_path(os.path.join(OUT, 'deblur.png')), None)
    img.delete()
    return r


def whole_layer(gray=False, extra=None, **args):
    """Runs the procedure on the whole first layer of a fresh copy of the test image (made
    gray first when asked); `extra(img)` adds checks on the image before it is deleted."""
    img = load()
    if gray:
        img.convert_grayscale()
    status, msg = call(img, img.get_layers()[0], **args)
    r = {'status': status, 'message': msg}
    r.update(describe(img))
    if extra:
        r.update(extra(img))
    img.delete()
    return r


def sr4():
    return whole_layer(task='sr4', method=METHOD)


def colorize_gray():
    # A gray image is converted to RGB first, so the colours have somewhere to go.
    return whole_layer(gray=True, task='colorize', method=METHOD,
                       extra=lambda img: {'rgb': img.get_base_type() == Gimp.ImageBaseType.RGB})


def inpaint_without_selection():
    img = load()
    status, msg = call(img, img.get_layers()[0], task='inpaint', method=METHOD)
    r = {'status': status, 'message': msg, 'layers': len(img.get_layers())}
    img.delete()
    return r


def missing_binary():
    return whole_layer(task='sr2', method=METHOD, vml_filter='/nonexistent/vml-filter')


def binary_error():
    # A model file that does not exist: vml-filter's own message must reach the caller.
    return whole_layer(task='sr2', method='vml-map', model='/nonexistent/model.safetensors',
                       steps=2)


def gray_sr():
    return whole_layer(gray=True, task='sr2', method=METHOD,
                       extra=lambda img: {'gray': img.get_base_type() == Gimp.ImageBaseType.GRAY})


def deep_alpha_sr():
    # 16-bit precision and an alpha channel: the plug-in sends 16-bit RGBA.
    img = load()
    img.convert_precision(Gimp.Precision.U16_NON_LINEAR)
    layer = img.get_layers()[0]
    layer.add_alpha()
    before = mean_value(layer)
    status, msg = call(img, layer, task='sr2', method=METHOD)
    r = {'status': status, 'message': msg}
    r.update(describe(img))
    top = img.get_layers()[0]
    r['top_has_alpha'] = top.has_alpha()
    r['precision'] = img.get_precision().value_nick
    # Same picture, twice the size: the mean and spread of the values barely move (a wrong byte
    # order or channel layout would scramble them).
    r['mean_std_before'] = before
    r['mean_std_after'] = mean_value(top)
    img.delete()
    return r


def cancel():
    # The test script kills this plug-in process (as GIMP's Cancel does) while vml-filter works;
    # here we only see the call fail.
    img = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE,
                         Gio.File.new_for_path(os.environ['VML_TEST_BIG']))
    w, h = img.get_width(), img.get_height()
    img.select_rectangle(Gimp.ChannelOps.REPLACE, w // 10, h // 10, w * 8 // 10, h * 8 // 10)
    status, msg = call(img, img.get_layers()[0], task='inpaint', method=METHOD)
    r = {'status': status, 'message': msg}
    r.update(describe(img))
    img.delete()
    return r


def jpeg_from_file():
    # Saved as a JPEG by GIMP, opened again: the plug-in takes the file's quality and sampling
    # from what GIMP's loader kept with the image (a script's file_load records no file name).
    img = load()
    path = os.path.join(OUT, 'in.jpg')
    Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, img, Gio.File.new_for_path(path), None)
    img.delete()
    img = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))
    status, msg = call(img, img.get_layers()[0], task='jpeg', jpeg_quality=0, method=METHOD)
    r = {'status': status, 'message': msg}
    r.update(describe(img))
    img.delete()
    return r


def jpeg_needs_a_file_or_quality():
    # in.png is no JPEG: without a quality the plug-in must refuse, with one it restores.
    refused = whole_layer(task='jpeg', jpeg_quality=0, method=METHOD)
    given = whole_layer(task='jpeg', jpeg_quality=40, method=METHOD)
    return {'refused': refused, 'given': given}


def imported_as_gimp_does(path, turn):
    """`path` loaded, then what GIMP's import does beyond a script's file_load
    (app/core/gimpimage-rotate.c, gimp_image_import_rotation_metadata): turned upright
    when `turn` (the user's or the preference's choice), and the metadata's orientation
    set to 1 either way."""
    img = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))
    if turn:  # EXIF 6: a quarter turn clockwise
        img.rotate(Gimp.RotationType.DEGREES90)
    xml = img.get_metadata().serialize().replace(
        '<tag name="Exif.Image.Orientation">6</tag>', '<tag name="Exif.Image.Orientation">1</tag>')
    img.set_metadata(Gimp.Metadata.deserialize(xml))
    return img


class Opened:
    """A GIMP image as a user's File > Open leaves it, with the file it was imported from:
    the one thing a script's load does not record (and cannot set: set_file takes XCF)."""

    def __init__(self, img, path):
        self.img, self.path = img, path

    def get_imported_file(self):
        return Gio.File.new_for_path(self.path)

    def __getattr__(self, name):
        return getattr(self.img, name)


def plugin_functions():
    """The plug-in's functions, loaded without registering it (as find_filter_check.py)."""
    path = os.environ['VML_TEST_PLUGIN']
    source = open(path, encoding='utf-8').read().replace(
        'Gimp.main(VmlRestore.__gtype__, sys.argv)', '')
    env = {'__file__': path, '__name__': 'vml_restore'}
    exec(compile(source, path, 'exec'), env)
    return env


def jpeg_turned():
    # A phone's JPEG, stored sideways with EXIF orientation 6. The plug-in must tell
    # vml-filter the orientation when GIMP turned the image upright, and not when it kept
    # the stored rows: its decision on real GIMP images and metadata.
    path = os.environ['VML_TEST_TURNED']
    turned_on_import = plugin_functions()['turned_on_import']
    r = {}
    for name, turn in (('turned', True), ('kept', False)):
        img = imported_as_gimp_does(path, turn)
        r[name] = turned_on_import(Opened(img, path))
        img.delete()
    # A script's own load skips the import step: the file's tag stays in the metadata and
    # the rows as stored. The procedure sends no orientation (logged by the wrapper).
    img = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))
    r['script'] = turned_on_import(Opened(img, path))
    status, msg = call(img, img.get_layers()[0], task='jpeg', jpeg_quality=0,
                       method=METHOD, vml_filter=os.environ['VML_TEST_LOGGING_FILTER'])
    r['call'] = {'status': status, 'message': msg}
    r['call'].update(describe(img))
    img.delete()
    return r


def estimate_noise():
    return whole_layer(task='sr2', method=METHOD, estimate_noise=True)


for name, fn in [('registration', registration), ('inpaint', inpaint), ('sr2', sr2), ('denoise', denoise_in_selection),
                 ('deblur', deblur_motion_in_selection), ('sr4', sr4), ('colorize', colorize_gray),
                 ('inpaint_no_selection', inpaint_without_selection),
                 ('missing_binary', missing_binary), ('binary_error', binary_error),
                 ('gray_sr', gray_sr), ('deep_alpha_sr', deep_alpha_sr), ('jpeg_file', jpeg_from_file),
                 ('jpeg_no_file', jpeg_needs_a_file_or_quality), ('jpeg_turned', jpeg_turned),
                 ('estimate_noise', estimate_noise),
                 ('cancel', cancel)]:
    only = os.environ.get('VML_TEST_ONLY')
    if only and name not in only.split(','):
        continue
    if name == 'cancel' and not only:
        continue  # run on its own by gimp-test.sh
    case(name, fn)
results['done'] = True
save_results()
