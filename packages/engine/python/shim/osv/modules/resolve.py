# osv-build's implementation of OSv's module resolution API (osv.modules.resolve), written for
# osvb's evaluation worker. Module lookup is delegated to the osvb host (config.json rules and
# fetching live in the TypeScript engine); everything that module.py code can observe -- the
# loaded table, `require` order, `provides`, run configurations, conditional requires -- is
# kept here, in the interpreter that runs module.py, as OSv keeps it.
import os
import runpy

from osv.modules import replay
from collections import OrderedDict


class OsvbShimError(Exception):
    """An error with an osvb error code; the worker reports it with the module.py location."""

    def __init__(self, code, message, hint=None, location=None):
        Exception.__init__(self, message)
        self.code = code
        self.message = message
        self.hint = hint
        # Where the problem is when that is not the module.py (a config.json entry): the
        # module.py line that asked is then context, not the location.
        self.location = location


class _State(object):
    def __init__(self):
        self.loaded = OrderedDict()      # name or alias -> Module
        self.loading = []                # names whose module.py is running
        self.run_table = OrderedDict()   # Module -> run configuration name
        self.conditional = OrderedDict() # other module -> [modules to add]
        self.requires = {}               # module name -> [required names, call order]
        self.user_files = set()          # module.py / image files executed
        self.has_module_py = {}          # module name -> bool
        # Partial evaluation (replay.py):
        self.events = {}                 # module name -> what running its module.py did, in order
        self.replay = {}                 # module name -> {'dir', 'record'} the engine allows to replay
        self.replayed = []               # modules replayed in this evaluation
        self.unreplayable = set()        # modules whose module.py looked at the shared state
        self.end_of_load = {}            # module name -> its plain attributes when it finished loading
        self.no_partial = None           # why this evaluation's records cannot be replayed
        self.worker_access = False       # True while the worker (not module.py code) reads attributes


_state = _State()
_host = None  # set by the worker: an object with call(method, params)


def _reset(host):
    global _state, _host
    _state = _State()
    _host = host


class Module(object):
    """A loaded module: its name, directory and module.py globals (read as attributes)."""

    _INTERNAL = ('name', 'local_path', '_osvb_props', '_osvb_replayed')

    def __init__(self, name, local_path, properties, replayed=None):
        object.__setattr__(self, 'name', name)
        object.__setattr__(self, 'local_path', local_path)
        object.__setattr__(self, '_osvb_props', properties)
        object.__setattr__(self, '_osvb_replayed', replayed)

    @property
    def properties(self):
        # The whole dict: what module.py code does with it cannot be followed.
        if not _state.worker_access:
            _state.no_partial = _state.no_partial or 'module.py code used Module.properties'
        if self._osvb_replayed is not None:
            raise replay.NeedFull('Module.properties of a module that was not run again')
        return self._osvb_props

    def __setattr__(self, attr, value):
        if not _state.worker_access:
            _state.no_partial = _state.no_partial or 'module.py code set attribute %s of module %s' % (attr, self.name)
        object.__setattr__(self, attr, value)

    def _osvb_digest(self, attr):
        r = self._osvb_replayed
        if r is not None:
            return r.digest(attr)
        try:
            v = self._osvb_props[attr]
        except KeyError:
            return replay.MISSING
        return replay.plain_digest(v)

    def __getattr__(self, attr):
        if attr in Module._INTERNAL or (attr.startswith('__') and attr.endswith('__')):
            raise AttributeError(attr)
        tracked = _state.loading and not _state.worker_access
        if tracked:
            _note_event(('attr', self.name, attr, self._osvb_digest(attr)))
        r = self._osvb_replayed
        if r is not None:
            return r.get(attr, _state.worker_access)
        try:
            return self._osvb_props[attr]
        except KeyError:
            raise AttributeError(attr)


def _note_event(ev):
    """Record what the module.py now running did (nothing for the image config / top level)."""
    if _state.loading:
        _state.events.setdefault(_state.loading[-1], []).append(ev)


def _note_opaque():
    # A module.py that looked at the shared state itself is always run, never replayed.
    if _state.loading and not _state.worker_access:
        _state.unreplayable.add(_state.loading[-1])


def _internal_attr(module, attr):
    """An attribute read by the resolver itself (not by module.py code): (present, value)."""
    old = _state.worker_access
    _state.worker_access = True
    try:
        if hasattr(module, attr):
            return True, getattr(module, attr)
        return False, None
    finally:
        _state.worker_access = old


def get_osv_base():
    return os.environ['OSV_BASE']


def get_build_path():
    return os.environ['OSV_BUILD_PATH']


def get_images_dir():
    return os.path.join(get_osv_base(), 'images')


def get_config_path():
    return os.path.join(get_osv_base(), 'config.json')


def local_import(path):
    _note_opaque()
    return _run_file(path)


def _run_file(path):
    _state.user_files.add(os.path.abspath(path))
    _state.user_files.add(path)
    return runpy.run_path(path)


def get_required_modules():
    _note_opaque()
    seen = set()
    out = []
    for m in _state.loaded.values():
        if id(m) not in seen:
            seen.add(id(m))
            out.append(m)
    return out


def get_modules_to_run():
    _note_opaque()
    return _state.run_table


def _note_require(name):
    if _state.loading:
        _state.requires.setdefault(_state.loading[-1], []).append(name)
    else:
        _state.requires.setdefault('', []).append(name)


def require(module_name):
    _note_require(module_name)
    _note_event(('req', module_name))
    if module_name in _state.loading:
        cycle = _state.loading[_state.loading.index(module_name):] + [module_name]
        raise OsvbShimError('OSVB_RECURSIVE_REQUIRE',
                            "Recursive loading of '%s' module" % module_name,
                            'require cycle: ' + ' -> '.join(cycle))

    module = _state.loaded.get(module_name, None)
    if module:
        return module

    located = _host.call('locate', {'name': module_name})
    module_dir = located['dir']
    module_file = os.path.join(module_dir, 'module.py')
    replayed = None
    if not os.path.exists(module_file):
        _host.log('No module.py in %s' % module_dir)
        properties = {}
        _state.has_module_py[module_name] = False
    else:
        _state.has_module_py[module_name] = True
        _state.loading.append(module_name)
        access = _state.worker_access
        _state.worker_access = False
        try:
            _host.log('Importing %s' % module_file)
            candidate = _state.replay.get(module_name)
            if candidate is not None and candidate['dir'] == module_dir:
                properties = {}
                replayed = _replay_module(module_name, module_file, candidate['record'])
            else:
                _state.events[module_name] = []
                properties = _run_file(module_file)
                _state.end_of_load[module_name] = replay.module_record(properties)['plain']
        except BaseException as e:
            if not hasattr(e, '_osvb_loading'):
                e._osvb_loading = list(_state.loading)
            raise
        finally:
            _state.loading.remove(module_name)
            _state.worker_access = access

    module = Module(module_name, module_dir, properties, replayed)
    _state.loaded[module_name] = module
    has_provides, provides = _internal_attr(module, 'provides')
    if has_provides:
        for alias in provides:
            if _state.loaded.get(alias):
                raise OsvbShimError('OSVB_PROVIDES_CONFLICT',
                                    "There is more than one module included that provides: '%s'" % alias)
            _state.loaded[alias] = module
    return module


def _replay_module(module_name, module_file, record):
    """Make the calls module.py made when it last ran, in order, checking each attribute read."""
    _state.user_files.add(os.path.abspath(module_file))
    _state.user_files.add(module_file)
    _state.events[module_name] = []
    for ev in record['events']:
        kind = ev[0]
        if kind == 'req':
            require(ev[1])
        elif kind == 'runcfg':
            _set_run(_state.loaded[ev[1]], ev[1], ev[2])
            _note_event(ev)
        elif kind == 'cond':
            require_if_other_module_present(ev[1], ev[2])
        elif kind == 'init':
            if api_sequence() != ev[1]:
                raise replay.NeedFull('run_on_init numbering changed before %s' % module_name)
            bump_sequence()
            _note_event(ev)
        elif kind == 'attr':
            other = _state.loaded.get(ev[1])
            if other is None:
                raise replay.NeedFull('%s read module %s before it was loaded' % (module_name, ev[1]))
            now = other._osvb_digest(ev[2])
            same = now == ev[3] and (ev[3] is not None or other._osvb_replayed is not None)
            if not same:
                raise replay.NeedFull('attribute %s of %s changed (read by %s)' % (ev[2], ev[1], module_name))
            _note_event(ev)
        else:
            raise replay.NeedFull('unknown event %r' % (kind,))
    _state.replayed.append(module_name)
    return replay.ReplayedProperties(record['attrs'])


def api_sequence():
    from osv.modules import api
    return api.run_on_init.next_sequence


def bump_sequence():
    from osv.modules import api
    api.run_on_init.next_sequence += 1


def require_running(module_name, run_config='*'):
    module = require(module_name)
    _note_event(('runcfg', module_name, run_config))
    _set_run(module, module_name, run_config)


def _set_run(module, module_name, run_config):
    old = _state.run_table.get(module, None)
    if old:
        if old == '*':
            _state.run_table[module] = run_config
        elif run_config != '*' and old != run_config:
            raise OsvbShimError('OSVB_RUN_CONFIG_CONFLICT',
                                'Desired to run %s.%s but .%s already selected' % (module_name, run_config, old))
    else:
        _state.run_table[module] = run_config


def get_run_config(module, run_config):
    if run_config == 'none':
        return None
    attr = 'default' if run_config == '*' else run_config
    if hasattr(module, attr):
        return getattr(module, attr)
    if run_config != '*':
        raise OsvbShimError('OSVB_ATTRIBUTE_NOT_SET', 'Attribute %s not set in module %s' % (attr, module.name))
    return None


def require_if_other_module_present(module_name, other_module_name):
    _note_event(('cond', module_name, other_module_name))
    _state.conditional.setdefault(other_module_name, []).append(module_name)


def resolve_required_modules_if_other_is_present(order='sorted'):
    to_add = []
    for other, names in list(_state.conditional.items()):
        if _state.loaded.get(other):
            for name in names:
                if not _state.loaded.get(name):
                    _host.log("Adding module '%s' because module '%s' is present" % (name, other))
                    if name not in to_add:
                        to_add.append(name)
    # OSv iterates a set here (hash order, different on every run); osvb applies a sorted,
    # reproducible order.
    for name in sorted(to_add):
        require(name)
