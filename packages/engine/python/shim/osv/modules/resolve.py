# osv-build's implementation of OSv's module resolution API (osv.modules.resolve), written for
# osvb's evaluation worker. Module lookup is delegated to the osvb host (config.json rules and
# fetching live in the TypeScript engine); everything that module.py code can observe -- the
# loaded table, `require` order, `provides`, run configurations, conditional requires -- is
# kept here, in the interpreter that runs module.py, as OSv keeps it.
import os
import runpy
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


_state = _State()
_host = None  # set by the worker: an object with call(method, params)


def _reset(host):
    global _state, _host
    _state = _State()
    _host = host


class Module(object):
    """A loaded module: its name, directory and module.py globals (read as attributes)."""

    def __init__(self, name, local_path, properties):
        self.name = name
        self.local_path = local_path
        self.properties = properties

    def __getattr__(self, attr):
        if attr == 'properties':
            raise AttributeError(attr)
        try:
            return self.properties[attr]
        except KeyError:
            raise AttributeError(attr)


def get_osv_base():
    return os.environ['OSV_BASE']


def get_build_path():
    return os.environ['OSV_BUILD_PATH']


def get_images_dir():
    return os.path.join(get_osv_base(), 'images')


def get_config_path():
    return os.path.join(get_osv_base(), 'config.json')


def local_import(path):
    _state.user_files.add(os.path.abspath(path))
    _state.user_files.add(path)
    return runpy.run_path(path)


def get_required_modules():
    seen = set()
    out = []
    for m in _state.loaded.values():
        if id(m) not in seen:
            seen.add(id(m))
            out.append(m)
    return out


def get_modules_to_run():
    return _state.run_table


def _note_require(name):
    if _state.loading:
        _state.requires.setdefault(_state.loading[-1], []).append(name)
    else:
        _state.requires.setdefault('', []).append(name)


def require(module_name):
    _note_require(module_name)
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
    if not os.path.exists(module_file):
        _host.log('No module.py in %s' % module_dir)
        properties = {}
        _state.has_module_py[module_name] = False
    else:
        _state.has_module_py[module_name] = True
        _state.loading.append(module_name)
        try:
            _host.log('Importing %s' % module_file)
            properties = local_import(module_file)
        except BaseException as e:
            if not hasattr(e, '_osvb_loading'):
                e._osvb_loading = list(_state.loading)
            raise
        finally:
            _state.loading.remove(module_name)

    module = Module(module_name, module_dir, properties)
    _state.loaded[module_name] = module
    if hasattr(module, 'provides'):
        for alias in getattr(module, 'provides'):
            if _state.loaded.get(alias):
                raise OsvbShimError('OSVB_PROVIDES_CONFLICT',
                                    "There is more than one module included that provides: '%s'" % alias)
            _state.loaded[alias] = module
    return module


def require_running(module_name, run_config='*'):
    module = require(module_name)
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
