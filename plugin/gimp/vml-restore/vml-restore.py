#!/usr/bin/env python3
# GIMP 3 plug-in: Filters > Enhance > Restore with VML-MAP...
#
# A thin host shim: it turns the active layer (and the selection, when there is one) into one
# request of vml-filter's JSON-header protocol (docs/protocol.md), shows the progress lines in
# GIMP's progress bar and puts the answer back as a new layer, inside one undo group.
# Standard library and gi only: GIMP runs plug-ins with its own Python, without numpy.
#
# Where the binary comes from, first match wins: the "vml-filter" argument (remembered by GIMP
# like every argument), $VML_FILTER, the file "vml-filter-path" next to this script (written by
# plugin/install.sh), then PATH. See docs/gimp.md.

import array
import atexit
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

import gi

gi.require_version('Gimp', '3.0')
gi.require_version('GimpUi', '3.0')
gi.require_version('Gegl', '0.4')
from gi.repository import Gimp, GimpUi, Gegl, GObject, GLib, Gio  # noqa: E402

PROC_NAME = 'plug-in-vml-restore'

# nick -> protocol task; the nick also names the result layer.
TASKS = [
    ('inpaint', 'Inpaint the selection', 'Fill the selected pixels'),
    ('sr2', 'Super-resolution x2', 'Upscale the image 2 times'),
    ('sr4', 'Super-resolution x4', 'Upscale the image 4 times'),
    ('sr8', 'Super-resolution x8', 'Upscale the image 8 times'),
    ('deblur', 'Deblur', 'Undo a blur of the chosen kernel and size'),
    ('denoise', 'Denoise', 'Remove Gaussian noise of the chosen strength'),
    ('colorize', 'Colorize', 'Colour a gray picture'),
    ('jpeg', 'JPEG artefacts', 'Undo JPEG compression (blocks, ringing) with the tables of the '
     'JPEG file the image came from, or of the quality given'),
]
KERNELS = [
    ('gaussian', 'Gaussian', 'Size is the standard deviation in pixels'),
    ('uniform', 'Box', 'Size is the box width in pixels'),
    ('motion', 'Motion', 'Size is the streak length in pixels; see Motion angle'),
]
METHODS = [
    ('vml-map', 'VML-MAP', 'Variational MAP with the diffusion prior (best quality per step)'),
    ('vml-map-pre', 'VML-MAP (preconditioned)', 'VML-MAP with a preconditioner'),
    ('dps', 'DPS', 'Diffusion posterior sampling'),
    ('ddrm', 'DDRM', 'Denoising diffusion restoration models'),
    ('pigdm', 'PiGDM', 'Pseudo-inverse guided diffusion'),
    ('diffpir', 'DiffPIR', 'Plug-and-play diffusion with a data proximal step'),
    ('red-diff', 'RED-diff', 'Regularisation by denoising diffusion (Adam on the image)'),
    ('daps', 'DAPS', 'Decoupled annealing posterior sampling (Steps = annealing levels)'),
    ('classical', 'Classical (no network)', 'Fast classical restoration, no model needed'),
]
QUALITY = [
    ('fast', 'Fast', "A fraction of the method's default budget"),
    ('normal', 'Normal', "The method's default budget"),
    ('best', 'Best', 'More steps where they still help: slower'),
]

# Only this thread may talk to GIMP: the wire protocol between a plug-in and GIMP is not
# thread-safe, so reader threads only store what they saw.
_children = []


def _kill_children():
    for p in _children:
        if p.poll() is None:
            try:
                p.kill()
            except OSError:
                pass


atexit.register(_kill_children)


def _on_signal(signum, _frame):
    # GIMP's Cancel on the progress bar ends this process; take vml-filter along so it does
    # not keep a CPU or GPU busy for minutes.
    _kill_children()
    os._exit(128 + signum)


for _s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
    try:
        signal.signal(_s, _on_signal)
    except (OSError, ValueError):
        pass


def _die_with_parent():
    # Runs in the child between fork and exec: the kernel sends SIGKILL to vml-filter when this
    # plug-in dies, even by SIGKILL, where no handler above can run.
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


class RestoreError(Exception):
    pass


def find_filter(configured):
    """The vml-filter binary: argument, $VML_FILTER, installed path file, PATH."""
    candidates = []
    if configured:
        candidates.append(('the vml-filter argument', configured))
    env = os.environ.get('VML_FILTER')
    if env:
        candidates.append(('$VML_FILTER', env))
    path_file = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'vml-filter-path')
    try:
        with open(path_file, encoding='utf-8') as f:
            installed = f.read().strip()
        if installed:
            candidates.append((path_file, installed))
    except OSError:
        pass
    for where, path in candidates:
        path = os.path.expanduser(path)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
        raise RestoreError('vml-filter not found at %s (from %s)' % (path, where))
    found = shutil.which('vml-filter')
    if found:
        return found
    raise RestoreError('vml-filter not found: set the "vml-filter" argument, $VML_FILTER, '
                       'or run plugin/install.sh, or put vml-filter on PATH')


# ---------------------------------------------------------------------------------------------
# Pixels out: GEGL buffer bytes -> PNG, in pure Python (rows unfiltered, zlib level 1: cheap).

def _png_chunk(kind, data):
    return (struct.pack('>I', len(data)) + kind + data
            + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))


def encode_png(raw, width, height, channels, depth):
    """PNG of `raw` (rows of width*channels samples, big-endian for 16 bits)."""
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    stride = width * channels * depth // 8
    rows = bytearray()
    for y in range(height):
        rows.append(0)
        rows += raw[y * stride:(y + 1) * stride]
    ihdr = struct.pack('>IIBBBBB', width, height, depth, color_type, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + _png_chunk(b'IHDR', ihdr)
            + _png_chunk(b'IDAT', zlib.compress(bytes(rows), 1)) + _png_chunk(b'IEND', b''))


def _to_bytes(data):
    return data if isinstance(data, (bytes, bytearray)) else bytes(data)


def buffer_png(buffer, x, y, width, height, fmt, channels, depth):
    rect = Gegl.Rectangle.new(x, y, width, height)
    raw = _to_bytes(buffer.get(rect, 1.0, fmt, Gegl.AbyssPolicy.NONE))
    if depth == 16 and sys.byteorder == 'little':
        a = array.array('H')
        a.frombytes(raw)
        a.byteswap()
        raw = a.tobytes()
    return encode_png(raw, width, height, channels, depth)


def layer_format(drawable, high_depth):
    """Babl format name, channels and bit depth used to send `drawable`."""
    gray = drawable.is_gray()
    alpha = drawable.has_alpha()
    base = ("Y'A" if alpha else "Y'") if gray else ("R'G'B'A" if alpha else "R'G'B'")
    channels = (1 if gray else 3) + (1 if alpha else 0)
    depth = 16 if high_depth else 8
    return '%s u%d' % (base, depth), channels, depth


# ---------------------------------------------------------------------------------------------
# Talking to vml-filter.

# Position in natural (row-major) order of the k-th coefficient of a JPEG zig-zag scan.
ZIGZAG = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34,
          27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37,
          44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63]


def jpeg_file_tables(path):
    """The protocol's `tables` of a JPEG file: its quantisation tables (natural order) and
    luma sampling, from the DQT and SOF markers before the first scan. vml-filter checks
    them again; this only has to read them, and refuses what it cannot read."""
    with open(path, 'rb') as f:
        data = f.read()
    tables, components = {}, None
    for marker, body in jpeg_markers(data, path):
        if marker == 0xDB:  # DQT: tables of 64 steps, 8- or 16-bit
            j = 0
            while j < len(body):
                wide, slot = body[j] >> 4, body[j] & 15
                n = 128 if wide else 64
                raw = body[j + 1:j + 1 + n]
                steps = [int.from_bytes(raw[2 * k:2 * k + 2], 'big') for k in range(64)] \
                    if wide else list(raw)
                natural = [0] * 64
                for k, v in enumerate(steps):
                    natural[ZIGZAG[k]] = v
                tables[slot] = natural
                j += 1 + n
        elif marker in (0xC0, 0xC1, 0xC2):  # baseline, extended, progressive
            count = body[5]
            components = [(body[6 + 3 * c + 1] >> 4, body[6 + 3 * c + 1] & 15, body[6 + 3 * c + 2])
                          for c in range(count)]
        elif 0xC3 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            raise RestoreError('%s: this kind of JPEG (SOF%d) is not modelled' % (path, marker - 0xC0))
    if not components or any(tq not in tables for _, _, tq in components):
        raise RestoreError('%s: no usable JPEG tables found' % path)
    (h, v, _), rest = components[0], components[1:]
    if any((ch, cv) != (1, 1) for ch, cv, _ in rest):
        raise RestoreError('%s: unusual chroma sampling, not modelled' % path)
    return {'sampling': [h, v], 'quant': [tables[tq] for _, _, tq in components]}


def jpeg_markers(data, path):
    """(marker, body) of each segment of the JPEG file `path` (read as `data`) before its
    first scan."""
    if data[:2] != b'\xff\xd8':
        raise RestoreError('%s is not a JPEG file' % path)
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise RestoreError('%s: malformed JPEG marker structure' % path)
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xDA:
            return
        length = int.from_bytes(data[i + 2:i + 4], 'big')
        yield marker, data[i + 4:i + 2 + length]
        i += 2 + length


def jpeg_file_layout(path):
    """(EXIF orientation 1-8, stored width, stored height) of a JPEG file; orientation 1
    when it has no readable tag, sizes None without a frame header."""
    with open(path, 'rb') as f:
        data = f.read()
    orientation, size = 1, (None, None)
    for marker, body in jpeg_markers(data, path):
        if marker in (0xC0, 0xC1, 0xC2) and len(body) >= 5:
            size = (int.from_bytes(body[3:5], 'big'), int.from_bytes(body[1:3], 'big'))
        elif marker == 0xE1 and body[:6] == b'Exif\0\0':
            tiff = body[6:]
            order = {b'II': 'little', b'MM': 'big'}.get(tiff[:2])
            if order is None or len(tiff) < 10:
                continue
            num = lambda at, n: int.from_bytes(tiff[at:at + n], order)
            ifd = num(4, 4)
            for k in range(num(ifd, 2) if ifd + 2 <= len(tiff) else 0):
                at = ifd + 2 + 12 * k
                if at + 12 <= len(tiff) and num(at, 2) == 0x0112:  # Orientation, a SHORT
                    v = num(at + 8, 2)
                    orientation = v if 1 <= v <= 8 else 1
    return orientation, size[0], size[1]


def metadata_orientation(image):
    """The EXIF orientation GIMP's metadata of the image holds now (0 when it has none), or
    None without metadata. Read from its serialised form: GExiv2's own getters need a
    typelib that GIMP does not depend on."""
    md = image.get_metadata()
    if md is None:
        return None
    try:
        xml = md.serialize()
    except Exception:
        return None
    m = re.search(r'<tag name="Exif\.Image\.Orientation"[^>]*>\s*(\d+)\s*</tag>', xml or '')
    return int(m.group(1)) if m else 0


def turned_on_import(image):
    """The EXIF orientation GIMP turned the image upright by when it opened its JPEG file
    (1: not turned, or no JPEG file). On import GIMP turns the image or not (it asks, or
    follows its preference), then sets the orientation in its metadata to 1 either way
    (app/core/gimpimage-rotate.c, gimp_image_import_rotation_metadata). So: metadata
    still holding the file's tag means the import step never ran (a script's load); after
    it, a quarter turn shows in the size, and a half turn or a mirror, which cannot be
    seen, is taken as applied, GIMP's default."""
    path = image_file(image)
    if not path or not os.path.exists(path):
        return 1
    try:
        stored, fw, fh = jpeg_file_layout(path)
    except (OSError, RestoreError):
        return 1  # not a JPEG (any more): nothing was turned that vml-filter could use
    if stored == 1 or metadata_orientation(image) == stored:
        return 1
    if stored >= 5 and fw and fh and fw != fh:
        return stored if (image.get_width(), image.get_height()) == (fh, fw) else 1
    return stored


def image_file(image):
    """The file the image was opened or imported from, or None."""
    for getter in ('get_imported_file', 'get_file'):
        f = getattr(image, getter, lambda: None)()
        if f is not None and f.get_path():
            return f.get_path()
    return None


def jpeg_parasite_task(image):
    """The JPEG task from what GIMP's JPEG loader keeps with the image (its `jpeg-settings`
    parasite: colour space, quality, component count, table count, each component's
    sampling factors, then any tables as 64 big-endian 16-bit steps in libjpeg's natural
    order). No tables means the file's are libjpeg's standard ones at that quality."""
    par = image.get_parasite('jpeg-settings')
    if par is None:
        return None
    d = bytes(par.get_data())
    if len(d) < 4 or len(d) < 4 + 2 * d[2] + 128 * d[3]:
        return None
    quality, ncomp, ntables = d[1], d[2], d[3]
    factors = [(d[4 + 2 * c], d[5 + 2 * c]) for c in range(ncomp)]
    if not factors or any(f != (1, 1) for f in factors[1:]):
        raise RestoreError('JPEG artefacts: unusual chroma sampling, not modelled')
    h, v = factors[0]
    if ntables == 0:
        return {'kind': 'jpeg', 'quality': quality, 'sampling': [h, v]}
    off = 4 + 2 * ncomp
    tables = [[int.from_bytes(d[off + 128 * t + 2 * i:off + 128 * t + 2 * i + 2], 'big')
               for i in range(64)] for t in range(ntables)]
    quant = tables[:1] if ncomp == 1 else tables[:3]
    return {'kind': 'jpeg', 'tables': {'sampling': [h, v], 'quant': quant}}


def build_task(config, image=None):
    task = config.get_property('task')
    if task == 'inpaint':
        return {'kind': 'inpaint'}
    if task in ('sr2', 'sr4', 'sr8'):
        return {'kind': 'sr', 'scale': int(task[2:])}
    if task == 'deblur':
        kernel = config.get_property('deblur-kernel')
        size = config.get_property('deblur-size')
        if kernel == 'gaussian':
            return {'kind': 'deblur', 'kernel': 'gaussian', 'sigma': size}
        if kernel == 'uniform':
            return {'kind': 'deblur', 'kernel': 'uniform', 'size': max(1, int(round(size)))}
        return {'kind': 'deblur', 'kernel': 'motion', 'length': size,
                'angle': config.get_property('motion-angle')}
    if task == 'denoise':
        return {'kind': 'denoise', 'sigma': config.get_property('denoise-strength')}
    if task == 'colorize':
        return {'kind': 'colorize'}
    if task == 'jpeg':
        quality = config.get_property('jpeg-quality')
        if quality > 0:
            return {'kind': 'jpeg', 'quality': quality}
        # What GIMP kept from the JPEG it loaded, else the file it came from.
        from_parasite = jpeg_parasite_task(image) if image is not None else None
        if from_parasite is not None:
            return from_parasite
        path = image_file(image) if image is not None else None
        if not path or not path.lower().endswith(('.jpg', '.jpeg', '.jpe', '.jfif')):
            raise RestoreError('JPEG artefacts: the image was not opened from a JPEG file; '
                               'give the JPEG quality it was saved with')
        return {'kind': 'jpeg', 'tables': jpeg_file_tables(path)}
    raise RestoreError('unknown task %r' % task)


def build_options(config):
    method = config.get_property('method')
    # The preset is vml-filter's own budget for the chosen method; a step count goes only
    # where the user set one, and never to the classical estimate, which takes none.
    # PNG back whatever the layer came as: GIMP reads it losslessly, 16-bit included.
    options = {'method': method, 'seed': config.get_property('seed'),
               'quality': config.get_property('quality'), 'format': 'png'}
    # vml-filter estimates the noise from the layer (`auto`), or is told it has none.
    options['sigma_y'] = 'auto' if config.get_property('estimate-noise') else 0
    steps = config.get_property('steps')
    if steps > 0 and method != 'classical':
        options['steps'] = steps
    model = config.get_property('model')
    if model:
        options['model'] = model
    device = config.get_property('device')
    if device and device != 'auto':
        options['device'] = device
    return options


class FilterRun:
    """One vml-filter child speaking the protocol; pumps its pipes on threads."""

    def __init__(self, binary, header, image, mask):
        self.progress = 0.0
        self.stage = ''
        self.stderr_lines = []
        self.response = None
        self.payload = b''
        self.read_error = None
        try:
            self.proc = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
        except OSError as e:
            raise RestoreError('cannot start %s: %s' % (binary, e))
        _children.append(self.proc)
        request = json.dumps(header, separators=(',', ':')).encode() + b'\n'
        self._threads = [threading.Thread(target=self._write, args=(request, image, mask)),
                         threading.Thread(target=self._read_stdout),
                         threading.Thread(target=self._read_stderr)]
        for t in self._threads:
            t.daemon = True
            t.start()

    def _write(self, request, image, mask):
        try:
            self.proc.stdin.write(request)
            self.proc.stdin.write(image)
            if mask is not None:
                self.proc.stdin.write(mask)
            self.proc.stdin.close()
        except OSError:
            pass  # the child stopped reading: its answer says why

    def _read_stdout(self):
        try:
            line = self.proc.stdout.readline()
            if not line:
                return
            self.response = json.loads(line.decode('utf-8'))
            n = int(self.response.get('image', {}).get('bytes', 0)) if self.response.get('ok') else 0
            chunks, got = [], 0
            while got < n:
                c = self.proc.stdout.read(n - got)
                if not c:
                    break
                chunks.append(c)
                got += len(c)
            self.payload = b''.join(chunks)
        except (OSError, ValueError) as e:
            self.read_error = str(e)

    def _read_stderr(self):
        for raw in self.proc.stderr:
            line = raw.decode('utf-8', 'replace').strip()
            if not line:
                continue
            if line.startswith('{'):
                try:
                    msg = json.loads(line)
                except ValueError:
                    msg = None
                if isinstance(msg, dict) and 'progress' in msg:
                    self.progress = float(msg.get('progress') or 0.0)
                    self.stage = str(msg.get('stage') or '')
                    continue
            self.stderr_lines.append(line)

    def wait(self, on_tick):
        while self.proc.poll() is None:
            on_tick(self.progress, self.stage)
            time.sleep(0.1)
        for t in self._threads:
            t.join(5)
        on_tick(1.0, self.stage)
        return self.proc.returncode

    def result(self):
        code = self.proc.returncode
        r = self.response
        if r is not None and not r.get('ok', False):
            err = r.get('error') or {}
            raise RestoreError('vml-filter: %s (%s, exit %s)' % (
                err.get('message', 'failed'), err.get('code', '?'), code))
        if code != 0 or r is None:
            tail = '\n'.join(self.stderr_lines[-5:]) or self.read_error or 'no answer'
            raise RestoreError('vml-filter exited with code %s: %s' % (code, tail))
        want = int(r['image']['bytes'])
        if len(self.payload) != want:
            raise RestoreError('vml-filter sent %d of %d image bytes' % (len(self.payload), want))
        return r, self.payload


# ---------------------------------------------------------------------------------------------
# The procedure.

def _error(procedure, message):
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR,
                                       GLib.Error.new_literal(Gimp.PlugIn.error_quark(),
                                                              message, 0))


def _crop_box(drawable, task, has_selection):
    """Region of the drawable to send: the whole layer, or the selection's box plus context."""
    w, h = drawable.get_width(), drawable.get_height()
    # A JPEG's 8x8 blocks are counted from the file's corner: JPEG artefacts need it all.
    if task.get('kind') in ('sr', 'jpeg') or not has_selection:
        return 0, 0, w, h
    ok, x, y, bw, bh = drawable.mask_intersect()
    if not ok:
        return None
    # The network needs surroundings to fill a hole or judge a blur; half the box each side,
    # at least 32 pixels.
    pad = max(32, max(bw, bh) // 2)
    x0, y0 = max(0, x - pad), max(0, y - pad)
    x1, y1 = min(w, x + bw + pad), min(h, y + bh + pad)
    return x0, y0, x1 - x0, y1 - y0


def _string_values(*nicks):
    va = Gimp.ValueArray.new(len(nicks))
    for nick in nicks:
        v = GObject.Value()
        v.init(GObject.TYPE_STRING)
        v.set_string(nick)
        va.append(v)
    return va


def _grey_out_unused(dialog):
    """Blur fields only for deblur, noise strength only for denoise, angle only for motion."""
    try:
        dialog.set_sensitive_if_in('deblur-kernel', None, 'task', _string_values('deblur'), True)
        dialog.set_sensitive_if_in('deblur-size', None, 'task', _string_values('deblur'), True)
        dialog.set_sensitive_if_in('motion-angle', None, 'deblur-kernel',
                                   _string_values('motion'), True)
        dialog.set_sensitive_if_in('denoise-strength', None, 'task', _string_values('denoise'),
                                   True)
        dialog.set_sensitive_if_in('jpeg-quality', None, 'task', _string_values('jpeg'), True)
    except Exception as e:  # a cosmetic nicety: never worth failing the dialog over
        sys.stderr.write('vml-restore: cannot grey out unused fields: %s\n' % e)


def restore(procedure, run_mode, image, drawables, config, data):
    if run_mode == Gimp.RunMode.INTERACTIVE:
        GimpUi.init(PROC_NAME)
        dialog = GimpUi.ProcedureDialog.new(procedure, config, 'Restore with VML-MAP')
        dialog.fill(None)
        _grey_out_unused(dialog)  # after fill: it needs the widgets
        if not dialog.run():
            dialog.destroy()
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
        dialog.destroy()

    if len(drawables) != 1:
        return _error(procedure, 'Restore with VML-MAP works on exactly one layer (got %d)'
                      % len(drawables))
    drawable = drawables[0]
    if not isinstance(drawable, Gimp.Layer):
        return _error(procedure, 'Restore with VML-MAP works on layers, not masks or channels')

    Gimp.context_push()
    tmpdir = None
    undo_open = False
    try:
        task = build_task(config, image)
        label = config.get_property('task')
        binary = find_filter(config.get_property('vml-filter'))
        has_selection = not Gimp.Selection.is_empty(image)
        if task['kind'] == 'inpaint' and not has_selection:
            raise RestoreError('Inpainting fills the selection: select the pixels to restore first')
        box = _crop_box(drawable, task, has_selection)
        if box is None:
            raise RestoreError('The selection does not touch the active layer')
        bx, by, bw, bh = box
        ok, ox, oy = drawable.get_offsets()

        high = image.get_precision() not in (Gimp.Precision.U8_LINEAR,
                                              Gimp.Precision.U8_NON_LINEAR,
                                              Gimp.Precision.U8_PERCEPTUAL)
        fmt, channels, depth = layer_format(drawable, high)
        png = buffer_png(drawable.get_buffer(), bx, by, bw, bh, fmt, channels, depth)
        mask_png = None
        if has_selection and task['kind'] != 'sr':
            # The selection channel lives in image coordinates.
            mask_png = buffer_png(image.get_selection().get_buffer(), ox + bx, oy + by, bw, bh,
                                  'Y u8', 1, 8)

        header = {'vml': 1, 'task': task, 'image': {'bytes': len(png)},
                  'options': build_options(config)}
        # Its 8x8 blocks were coded in the file's stored orientation, not in the one GIMP
        # shows: vml-filter solves in that one and answers upright.
        if task['kind'] == 'jpeg':
            turned = turned_on_import(image)
            if turned != 1:
                header['options']['orientation'] = turned
        if mask_png is not None:
            header['mask'] = {'bytes': len(mask_png)}

        Gimp.progress_init('Restoring with VML-MAP (%s)' % label)
        run = FilterRun(binary, header, png, mask_png)
        last = [-1.0, None]

        def tick(fraction, stage):
            if abs(fraction - last[0]) >= 0.005:
                Gimp.progress_update(max(0.0, min(1.0, fraction)))
                last[0] = fraction
            if stage and stage != last[1]:
                Gimp.progress_set_text('VML-MAP %s: %s' % (label, stage))
                last[1] = stage

        run.wait(tick)
        response, payload = run.result()

        # GIMP decodes the answer: it reads every format vml-filter may write, fast.
        tmpdir = tempfile.mkdtemp(prefix='vml-restore-')
        out_path = os.path.join(tmpdir, 'result.' + response['image'].get('format', 'png'))
        with open(out_path, 'wb') as f:
            f.write(payload)

        # The undo group opens only now, when the image is about to change: GIMP's Cancel ends
        # this process during the restore, and a group left open then makes GIMP complain that
        # the plug-in "left image undo in inconsistent state".
        image.undo_group_start()
        undo_open = True
        if task['kind'] == 'colorize' and image.get_base_type() != Gimp.ImageBaseType.RGB:
            image.convert_rgb()
        position = image.get_item_position(drawable)
        parent = drawable.get_parent()

        if task['kind'] == 'sr':
            s = task['scale']
            image.scale(image.get_width() * s, image.get_height() * s)
            result = Gimp.file_load_layer(Gimp.RunMode.NONINTERACTIVE, image,
                                          Gio.File.new_for_path(out_path))
            if result.get_width() != bw * s or result.get_height() != bh * s:
                raise RestoreError('vml-filter returned %dx%d, expected %dx%d' % (
                    result.get_width(), result.get_height(), bw * s, bh * s))
            result.set_name(label)
            image.insert_layer(result, parent, position)
            result.set_offsets(ox * s, oy * s)
        else:
            # A copy of the layer with the answer composited through the selection on top:
            # outside the selection the new layer equals the old one exactly, a feathered
            # selection blends, and toggling the layer compares before and after.
            answer = Gimp.file_load_layer(Gimp.RunMode.NONINTERACTIVE, image,
                                          Gio.File.new_for_path(out_path))
            if answer.get_width() != bw or answer.get_height() != bh:
                raise RestoreError('vml-filter returned %dx%d, expected %dx%d' % (
                    answer.get_width(), answer.get_height(), bw, bh))
            base = Gimp.Layer.new_from_drawable(drawable, image)
            image.insert_layer(base, parent, position)
            image.insert_layer(answer, parent, position)
            answer.set_offsets(ox + bx, oy + by)
            if has_selection:
                answer.add_mask(answer.create_mask(Gimp.AddMaskType.SELECTION))
            result = image.merge_down(answer, Gimp.MergeType.CLIP_TO_BOTTOM_LAYER)
            result.set_name(label)
        image.set_selected_layers([result])
        Gimp.progress_end()
        Gimp.displays_flush()
        return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())
    except RestoreError as e:
        return _error(procedure, str(e))
    except Exception as e:  # a GIMP call failed: say which, do not crash the plug-in
        return _error(procedure, 'Restore with VML-MAP failed: %s: %s' % (type(e).__name__, e))
    finally:
        _kill_children()
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
        if undo_open:
            image.undo_group_end()
        Gimp.context_pop()


def _choice(entries):
    c = Gimp.Choice.new()
    for i, (nick, label, help_text) in enumerate(entries):
        c.add(nick, i, label, help_text)
    return c


class VmlRestore(Gimp.PlugIn):
    def do_set_i18n(self, name):
        return False  # English only: no catalog to look for

    def do_query_procedures(self):
        return [PROC_NAME]

    def do_create_procedure(self, name):
        Gegl.init(None)
        p = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, restore, None)
        p.set_image_types('RGB*, GRAY*')
        p.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        p.set_menu_label('Restore with VML-MAP...')
        p.add_menu_path('<Image>/Filters/Enhance')
        p.set_documentation(
            'Restore the layer with a diffusion prior (VML-MAP)',
            'Inpaints the selection, upscales the image, deblurs, denoises, colorizes or undoes '
            'JPEG artefacts of the '
            'active layer with vml-filter. The result goes to a new layer named after the '
            'task; with a selection, only the selected pixels change.',
            name)
        p.set_attribution('vml-filter authors', 'vml-filter authors', '2026')
        rw = GObject.ParamFlags.READWRITE
        p.add_choice_argument('task', '_Task', 'What to restore', _choice(TASKS), 'inpaint', rw)
        p.add_choice_argument('deblur-kernel', 'Blur _kernel', 'Kernel of the blur to undo',
                              _choice(KERNELS), 'gaussian', rw)
        p.add_double_argument('deblur-size', 'Blur si_ze', 'Gaussian sigma, box width or '
                              'motion length, in pixels', 0.3, 64.0, 2.0, rw)
        p.add_double_argument('motion-angle', 'Motion _angle', 'Direction of a motion blur, '
                              'degrees counter-clockwise', -180.0, 180.0, 0.0, rw)
        p.add_double_argument('denoise-strength', '_Noise strength', 'Standard deviation of '
                              'the noise on the [-1, 1] pixel scale', 0.0, 1.0, 0.1, rw)
        p.add_int_argument('jpeg-quality', '_JPEG quality', 'Quality the JPEG was saved with; '
                           "0 = read its tables from the image's JPEG file", 0, 100, 0, rw)
        p.add_boolean_argument('estimate-noise', 'Estimate _noise', 'Estimate the noise of the '
                               'layer and let the method account for it; off = a noise-free layer', True, rw)
        p.add_choice_argument('method', '_Method', 'Restoration algorithm', _choice(METHODS),
                              'vml-map', rw)
        p.add_choice_argument('quality', '_Quality', "vml-filter's budget preset for the method",
                              _choice(QUALITY), 'normal', rw)
        p.add_int_argument('steps', 'Ste_ps', 'Solver steps; 0 = the Quality preset', 0, 1000, 0, rw)
        p.add_int_argument('seed', 'S_eed', 'Random seed', 0, 2 ** 31 - 1, 0, rw)
        p.add_string_argument('model', 'Mo_del file', 'Model file; empty = the default model',
                              '', rw)
        p.add_string_argument('device', 'De_vice', 'auto, cpu, cuda or cuda:N', 'auto', rw)
        p.add_string_argument('vml-filter', 'vml-filter _binary', 'Path of vml-filter; empty = '
                              '$VML_FILTER, the installed path, then PATH', '', rw)
        return p


Gimp.main(VmlRestore.__gtype__, sys.argv)
