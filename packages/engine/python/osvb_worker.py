# osvb evaluation worker: one long-lived python3 process per build that runs module.py and
# images/*.py files against osv-build's osv.modules shim and answers the engine in JSON lines.
#
# Protocol (one JSON object per line):
#   engine -> worker  {"id": N, "method": "evaluate", "params": {...}}
#   worker -> engine  {"type": "call", "id": K, "method": "locate", "params": {...}}
#   engine -> worker  {"type": "reply", "id": K, "result": ...} | {..., "error": {...}}
#   worker -> engine  {"type": "log", "text": "..."}
#   worker -> engine  {"type": "result", "id": N, "result": ...} | {..., "error": {...}}
# module.py code may print or start programs: fd 1 is pointed at stderr so nothing it writes
# can corrupt the protocol stream, and fd 0 at /dev/null.
import io
import json
import os
import sys
import traceback

_proto_in = io.open(os.dup(0), 'r', encoding='utf-8', newline='\n')
_proto_out = io.open(os.dup(1), 'w', encoding='utf-8', newline='\n')
_null = os.open(os.devnull, os.O_RDONLY)
os.dup2(_null, 0)
os.dup2(2, 1)
sys.stdout = sys.stderr

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'shim'))

from osv.modules import resolve, api, filemap  # noqa: E402
from osv.modules.resolve import OsvbShimError  # noqa: E402
from osv.modules import replay  # noqa: E402

import shutil  # noqa: E402


# ---------------------------------------------------------------------------------------------
# What an evaluation looked at. The engine caches an evaluation and reuses it only while every
# file it read, directory it listed, path it tested and variable it read is unchanged; so every
# such access made while module.py code runs is recorded here (audit hooks for opens, listings
# and processes; wrappers for stat and the environment). Python's own files are left out.

class _Reads(object):
    def __init__(self):
        self.files = set()
        self.dirs = set()
        self.stats = {}
        self.env = set()
        self.env_all = False

    def export(self):
        return {
            'files': sorted(self.files),
            'dirs': sorted(self.dirs),
            'stats': sorted(k for k in self.stats),
            'env': sorted(self.env),
            'envAll': self.env_all,
        }


class _Recorder(object):
    def __init__(self):
        self.active = False
        # Reads by who made them: the module whose module.py is running, '' for the rest.
        self.by = {}
        self.uncacheable = []
        here = os.path.dirname(os.path.abspath(__file__))
        self.skip = tuple(p for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, here} if p)

    def reset(self):
        self.__init__()

    def cur(self):
        st = resolve._state
        key = st.loading[-1] if st.loading else ''
        r = self.by.get(key)
        if r is None:
            r = self.by[key] = _Reads()
        return r

    @property
    def files(self):
        return self.cur().files

    @property
    def dirs(self):
        return self.cur().dirs

    @property
    def stats(self):
        return self.cur().stats

    @property
    def env(self):
        return self.cur().env

    def _path(self, p):
        if isinstance(p, bytes):
            p = os.fsdecode(p)
        if not isinstance(p, str):
            p = os.fspath(p) if hasattr(p, '__fspath__') else None
        if p is None:
            return None
        p = os.path.abspath(p)
        if p.startswith(self.skip):
            return None
        return p

    def audit(self, event, args):
        if not self.active:
            return
        if event == 'open':
            path, mode, flags = args
            if isinstance(path, int):
                return
            p = self._path(path)
            if p is None:
                return
            writing = (isinstance(mode, str) and any(c in mode for c in 'wax+')) or \
                      (mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if writing:
                self.uncacheable.append('module.py code wrote ' + p)
            else:
                self.files.add(p)
        elif event in ('os.listdir', 'os.scandir'):
            p = self._path(args[0] if args and args[0] is not None else '.')
            if p is not None:
                self.dirs.add(p)
        elif event == 'subprocess.Popen':
            executable, argv = args[0], args[1]
            prog = executable or (argv[0] if isinstance(argv, (list, tuple)) and argv else argv)
            if isinstance(prog, (str, bytes)):
                prog = os.fsdecode(prog)
                resolved = prog if os.sep in prog else shutil.which(prog)
                self.env.add('PATH')
                if resolved:
                    self.files.add(os.path.abspath(resolved))
            else:
                self.uncacheable.append('module.py code started a process')
        elif event in ('os.system', 'os.exec', 'os.posix_spawn', 'os.spawn', 'os.fork'):
            self.uncacheable.append('module.py code ran %s' % event)

    def stat(self, path, follow):
        if not self.active:
            return
        p = self._path(path) if not isinstance(path, int) else None
        if p is not None:
            key = ('S:' if follow else 'L:') + p
            self.stats[key] = True

    def set_env_all(self):
        self.cur().env_all = True

    def export(self):
        allr = _Reads()
        for r in self.by.values():
            allr.files |= r.files
            allr.dirs |= r.dirs
            allr.stats.update(r.stats)
            allr.env |= r.env
            allr.env_all = allr.env_all or r.env_all
        out = allr.export()
        out['uncacheable'] = self.uncacheable[:5]
        out['byModule'] = dict((k, r.export()) for k, r in self.by.items() if k)
        out['outside'] = self.by[''].export() if '' in self.by else _Reads().export()
        return out


RECORDER = _Recorder()
sys.addaudithook(RECORDER.audit)

_real_stat = os.stat
_real_lstat = os.lstat


def _recording_stat(path, *a, **kw):
    RECORDER.stat(path, kw.get('follow_symlinks', True))
    return _real_stat(path, *a, **kw)


def _recording_lstat(path, *a, **kw):
    RECORDER.stat(path, False)
    return _real_lstat(path, *a, **kw)


os.stat = _recording_stat
os.lstat = _recording_lstat


def _env_name(key):
    return os.fsdecode(key) if isinstance(key, bytes) else str(key)


class _RecordingEnviron(os._Environ):
    def __getitem__(self, key):
        if RECORDER.active:
            RECORDER.env.add(_env_name(key))
        return os._Environ.__getitem__(self, key)

    def __contains__(self, key):
        if RECORDER.active:
            RECORDER.env.add(_env_name(key))
        return os._Environ.__contains__(self, key)

    def __iter__(self):
        if RECORDER.active:
            RECORDER.set_env_all()
        return os._Environ.__iter__(self)

    def copy(self):
        if RECORDER.active:
            RECORDER.set_env_all()
        return dict(self)

    def __setitem__(self, key, value):
        _env_changed()
        return os._Environ.__setitem__(self, key, value)

    def __delitem__(self, key):
        _env_changed()
        return os._Environ.__delitem__(self, key)


def _env_changed():
    # module.py code that changes the environment changes what later module.py files see:
    # it is always run, never replayed.
    if RECORDER.active:
        resolve._note_opaque()


os.environ.__class__ = _RecordingEnviron


def _send(obj):
    _proto_out.write(json.dumps(obj) + '\n')
    _proto_out.flush()


class HostError(Exception):
    pass


class Host(object):
    def __init__(self):
        self._next = 0

    def call(self, method, params):
        self._next += 1
        call_id = self._next
        _send({'type': 'call', 'id': call_id, 'method': method, 'params': params})
        line = _proto_in.readline()
        if not line:
            raise SystemExit(3)
        reply = json.loads(line)
        if reply.get('error'):
            err = reply['error']
            raise OsvbShimError(err.get('code', 'OSVB_INTERNAL'), err.get('message', ''), err.get('hint'), err.get('location'))
        return reply.get('result')

    def log(self, text):
        _send({'type': 'log', 'text': text})


# ---------------------------------------------------------------------------------------------
# Apps: flattening the run list into launchers (OSv's scripts/module.py semantics)

class _IsolatedJvm(object):
    def __init__(self):
        self.apps = []

    def add(self, app):
        self.apps.append(app)


class _NonIsolatedJvm(object):
    def __init__(self):
        self.app = None

    def add(self, app):
        self.app = app


class DeferredError(Exception):
    pass


def _flatten(item):
    if not item:
        return []
    if not isinstance(item, list):
        return [item]
    out = []
    for e in item:
        out.extend(_flatten(e))
    return out


def _format_args(args, what):
    if isinstance(args, str):
        return args
    try:
        return ' '.join(args)
    except TypeError:
        raise OsvbShimError('OSVB_UNKNOWN_APP_TYPE',
                            '%s: a command line must be a string or a list of strings, got %r' % (what, args))


def _jvm_args(app):
    return list(app.get_jvm_args())


def _apps_to_records(run_list, origins, build_path):
    basic = []
    jvm = _IsolatedJvm()
    for item, origin in zip(run_list, origins):
        for app in _flatten(item):
            if isinstance(app, api.basic_app):
                basic.append((app, origin))
            elif isinstance(app, api.java_app):
                java = resolve.require('java-base')
                if hasattr(java, 'non_isolated_jvm') and java.non_isolated_jvm:
                    jvm = _NonIsolatedJvm()
                jvm.add(app)
            else:
                raise OsvbShimError('OSVB_UNKNOWN_APP_TYPE', 'Unknown app type: ' + str(app),
                                    ('in ' + origin + '; ' if origin else '') +
                                    'a run configuration must be api.run(...), api.run_on_init(...), '
                                    'api.run_java(...), api.delayed(...) or a list of them')
    records = []
    for app, origin in basic:
        kind = type(app)
        if kind is api.run:
            records.append({'kind': 'run', 'launcher': _format_args(app.cmdline, origin or 'run()')})
        elif kind is api.run_on_init:
            if not isinstance(app.cmdline, str):
                raise OsvbShimError('OSVB_UNKNOWN_APP_TYPE',
                                    'run_on_init() takes a command line string, got %r' % (app.cmdline,),
                                    origin or None)
            records.append({'kind': 'init', 'sequence': app.sequence, 'cmdline': app.cmdline})
        else:
            usr = io.StringIO()
            bootfs = io.StringIO()
            app.prepare_manifest(build_path, 'usr', usr)
            app.prepare_manifest(build_path, 'bootfs', bootfs)
            records.append({'kind': 'custom', 'launcher': _format_args(app.get_launcher_args(), origin or 'app'),
                            'usr': usr.getvalue(), 'bootfs': bootfs.getvalue()})
    if isinstance(jvm, _IsolatedJvm) and jvm.apps:
        jvm_args = []
        mains = ''
        for app in jvm.apps:
            jvm_args.extend(_jvm_args(app))
            mains += '\n'.join(app.get_multimain_lines()) + '\n'
        launcher = ['java.so'] + jvm_args + ['io.osv.isolated.MultiJarLoader', '-mains', '/etc/javamains']
        records.append({'kind': 'jvm', 'launcher': _format_args(launcher, 'java'), 'javamains': mains})
    elif isinstance(jvm, _NonIsolatedJvm) and jvm.app is not None:
        launcher = ['java.so'] + _jvm_args(jvm.app) + list(jvm.app.get_multimain_lines())
        records.append({'kind': 'run', 'launcher': _format_args(launcher, 'java')})
    return records


# ---------------------------------------------------------------------------------------------

def _filemap_of(module, attr, st=None):
    if module._osvb_replayed is not None and st is not None:
        rec = st.replay[module.name]['record']
        return rec['usrFiles' if attr == 'usr_files' else 'bootfsFiles']
    if not hasattr(module, attr):
        return None
    value = getattr(module, attr)
    if not isinstance(value, filemap.FileMap):
        raise OsvbShimError('OSVB_FILEMAP', '%s of module %s must be a FileMap, got %r' % (attr, module.name, value))
    return filemap._serialize(value)


def _resolved_requires(names):
    # Names as required (aliases included) -> the loaded modules' own names, first call first.
    out = []
    for n in names:
        m = resolve._state.loaded.get(n)
        if m is not None and m.name not in out:
            out.append(m.name)
    return out


def evaluate(params):
    replay_from = params.get('replay') or {}
    full_reason = None
    if replay_from:
        # Python modules a module.py imported during the abandoned attempt would be found in
        # sys.modules by the full run, unread (and so unrecorded): they are forgotten first.
        imported_before = set(sys.modules)
        try:
            result = _evaluate_once(params, replay_from)
            if not result['appsError']:
                return result
            full_reason = 'the run configurations failed'
        except replay.NeedFull as e:
            full_reason = str(e)
        except BaseException:  # noqa: BLE001 - reported by the full evaluation, with module.py lines
            full_reason = 'the partial evaluation failed'
        HOST.log('evaluating every module.py: %s' % full_reason)
        for name in [k for k in sys.modules if k not in imported_before]:
            del sys.modules[name]
    result = _evaluate_once(params, {})
    if full_reason:
        result['partial']['fullReason'] = full_reason
    return result


def _evaluate_once(params, replay_from):
    os.environ.clear()
    os.environ.update(params['env'])
    os.chdir(params['osvBase'])
    resolve._reset(HOST)
    api.run_on_init.next_sequence = 0
    st = resolve._state
    st.replay = replay_from
    spec = params['spec']
    RECORDER.reset()
    RECORDER.active = True
    try:
        result = _evaluate(params, st, spec)
    finally:
        RECORDER.active = False
    result['reads'] = RECORDER.export()
    result['partial'] = _partial_records(st, replay_from)
    return result


def _partial_records(st, replay_from):
    """What the next evaluation needs to replay the modules that ran this time."""
    modules = {}
    no_partial = st.no_partial
    replayed = set(st.replayed)
    for name, m in st.loaded.items():
        if name != m.name or name in replayed or not st.has_module_py.get(name, False):
            continue
        attrs = replay.module_record(m._osvb_props)
        if no_partial is None and st.end_of_load.get(name) != attrs['plain']:
            # Another module.py changed its plain attributes in place.
            no_partial = 'attributes of %s changed after it was loaded' % name
        modules[name] = {
            'replayable': name not in st.unreplayable,
            'events': st.events.get(name, []),
            'attrs': attrs,
        }
    return {
        'replayed': st.replayed,
        'modules': modules,
        'noPartial': no_partial,
    }


def _evaluate(params, st, spec):

    origins = []
    if spec['kind'] == 'image':
        props = resolve.local_import(spec['file'])
        run_list = props.get('run', [])
        if not isinstance(run_list, list):
            run_list = [run_list]
        origins = ['image config %s' % spec['file']] * len(run_list)
    else:
        run_list = []
        for item in spec['items']:
            if item.get('config') is None:
                resolve.require_running(item['name'])
            else:
                resolve.require_running(item['name'], item['config'])
        resolve.resolve_required_modules_if_other_is_present()

    # From here on the worker reads attributes, not module.py code.
    st.worker_access = True
    modules = resolve.get_required_modules()
    for module, config in st.run_table.items():
        value = resolve.get_run_config(module, config)
        if value:
            run_list.append(value)
            origins.append('run configuration %s.%s' % (module.name, config))

    out_modules = []
    for m in modules:
        out_modules.append({
            'name': m.name,
            'dir': m.local_path,
            'run': st.run_table.get(m),
            'hasModulePy': st.has_module_py.get(m.name, False),
            'requires': _resolved_requires(st.requires.get(m.name, [])),
            'usrFiles': _filemap_of(m, 'usr_files', st),
            'bootfsFiles': _filemap_of(m, 'bootfs_files', st),
        })

    # OSv flattens the run list after `make module`; an error here is reported after the
    # builds too (the engine re-raises it then).
    apps = None
    apps_error = None
    try:
        apps = _apps_to_records(run_list, origins, params['buildPath'])
    except BaseException as e:  # noqa: BLE001 - every failure becomes a report
        apps_error = _describe(e)

    return {
        'modules': out_modules,
        'apps': apps,
        'appsError': apps_error,
        'imageRequires': _resolved_requires(st.requires.get('', [])),
        'userFiles': sorted(f for f in st.user_files if os.path.isabs(f)),
    }


def _user_location(tb_entries):
    files = resolve._state.user_files
    loc = None
    for fs in tb_entries:
        if fs.filename in files or os.path.abspath(fs.filename) in files:
            loc = {'file': fs.filename, 'line': fs.lineno}
    return loc


def _describe(e):
    entries = traceback.extract_tb(e.__traceback__)
    loc = _user_location(entries)
    loading = getattr(e, '_osvb_loading', None)
    if isinstance(e, OsvbShimError):
        out = {'code': e.code, 'message': e.message}
        if e.hint:
            out['hint'] = e.hint
        if e.location:
            if loc:
                out['details'] = ['asked for by %s:%d' % (loc['file'], loc['line'])]
            loc = e.location
    elif isinstance(e, SystemExit):
        out = {'code': 'OSVB_MODULE_EXIT', 'message': 'module.py called exit(%s)' % (e.code,)}
    elif isinstance(e, SyntaxError) and e.filename:
        # The broken file is in the exception, not in the traceback (which ends in the file
        # that required it): name it, its line and column.
        out = {'code': 'OSVB_MODULE_PY', 'message': '%s: %s' % (type(e).__name__, e.msg)}
        if (e.text or '').strip():
            out['details'] = ['%s' % e.text.rstrip('\n')]
        loc = {'file': e.filename, 'line': e.lineno or 1}
        if e.offset:
            loc['column'] = e.offset
    else:
        text = str(e)
        out = {'code': 'OSVB_MODULE_PY', 'message': '%s: %s' % (type(e).__name__, text) if text else type(e).__name__}
        if os.environ.get('OSVB_DEBUG_WORKER'):
            out['details'] = traceback.format_exception(e)
        user = [fs for fs in entries if fs.filename in resolve._state.user_files]
        if user:
            out['details'] = ['%s:%d: %s' % (fs.filename, fs.lineno, (fs.line or '').strip()) for fs in user[-5:]]
    if loc:
        out['location'] = loc
    if loading:
        out['loading'] = loading
    return out


HOST = Host()


def main():
    for line in _proto_in:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            if req.get('method') == 'evaluate':
                result = evaluate(req['params'])
            elif req.get('method') == 'ping':
                result = {'python': sys.version.split()[0], 'executable': sys.executable}
            else:
                raise OsvbShimError('OSVB_INTERNAL', 'unknown method %s' % req.get('method'))
            _send({'type': 'result', 'id': req['id'], 'result': result})
        except BaseException as e:  # noqa: BLE001
            _send({'type': 'result', 'id': req['id'], 'error': _describe(e)})


if __name__ == '__main__':
    main()
