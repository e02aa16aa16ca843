# Checks the plug-in's binary lookup (find_filter) with GIMP's Python bindings but without
# starting GIMP: the "vml-filter" argument, $VML_FILTER, the installed vml-filter-path file, then
# PATH; a path that is set but wrong is an error naming where it came from.
# Run inside the trixie root by tests/shims/gimp-test.sh:  python3 find_filter_check.py PLUGIN
import os
import stat
import sys
import tempfile

plugin = sys.argv[1]
source = open(plugin, encoding='utf-8').read()
main_call = 'Gimp.main(VmlRestore.__gtype__, sys.argv)'
if main_call not in source:
    sys.exit('find_filter_check: %s no longer ends with %s' % (plugin, main_call))

tmp = tempfile.mkdtemp(prefix='vml-find-')


def fake_binary(folder):
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, 'vml-filter')
    with open(path, 'w') as f:
        f.write('#!/bin/sh\n')
    os.chmod(path, stat.S_IRWXU)
    return path


def load(plugin_dir):
    """The plug-in's functions, as if its file lived in plugin_dir (where vml-filter-path is)."""
    env = {'__file__': os.path.join(plugin_dir, 'vml-restore.py'), '__name__': 'vml_restore'}
    exec(compile(source.replace(main_call, ''), plugin, 'exec'), env)
    return env


arg_bin = fake_binary(os.path.join(tmp, 'arg'))
env_bin = fake_binary(os.path.join(tmp, 'env'))
installed_bin = fake_binary(os.path.join(tmp, 'installed'))
path_bin = fake_binary(os.path.join(tmp, 'path'))
bare = load(os.path.join(tmp, 'bare'))  # no vml-filter-path next to it
installed_dir = os.path.join(tmp, 'plugin')
os.makedirs(installed_dir)
with open(os.path.join(installed_dir, 'vml-filter-path'), 'w') as f:
    f.write(installed_bin + '\n')
installed = load(installed_dir)

failed = 0


def expect(name, mod, configured, env_value, path_dirs, want):
    """want: a path, or ('error', text the message must contain)."""
    global failed
    os.environ.pop('VML_FILTER', None)
    if env_value is not None:
        os.environ['VML_FILTER'] = env_value
    os.environ['PATH'] = ':'.join(path_dirs) or '/nonexistent'
    try:
        got = mod['find_filter'](configured)
    except mod['RestoreError'] as e:
        got = ('error', str(e))
    ok = got == want if isinstance(want, str) else (
        isinstance(got, tuple) and want[1] in got[1])
    failed += 0 if ok else 1
    print('%s %s%s' % ('ok  ' if ok else 'FAIL', name, '' if ok else ': got %r' % (got,)))


p = [os.path.dirname(path_bin)]
expect('argument first', installed, arg_bin, env_bin, p, arg_bin)
expect('$VML_FILTER next', installed, '', env_bin, p, env_bin)
expect('installed vml-filter-path next', installed, '', None, p, installed_bin)
expect('PATH last', bare, '', None, p, path_bin)
expect('wrong argument: error naming it', installed, '/no/such', env_bin, p,
       ('error', 'from the vml-filter argument'))
expect('wrong $VML_FILTER: error naming it, no fall-through', installed, '', '/no/such', p,
       ('error', 'from $VML_FILTER'))
expect('nothing anywhere: error', bare, '', None, [], ('error', 'vml-filter not found'))
sys.exit(1 if failed else 0)
