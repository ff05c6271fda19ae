# osv-build's implementation of OSv's module.py API (osv.modules.api): run configurations and
# the require functions, with the observable behaviour of OSv's own module.
from osv.modules import resolve
import os

require = resolve.require
require_running = resolve.require_running
require_if_other_module_present = resolve.require_if_other_module_present


class basic_app:
    def prepare_manifest(self, build_dir, manifest_type, manifest):
        pass

    def get_launcher_args(self):
        return []


class run(basic_app):
    def __init__(self, cmdline):
        self.cmdline = cmdline

    def get_launcher_args(self):
        return self.cmdline


class run_on_init(basic_app):
    # One counter for the whole evaluation: a number is taken by every construction,
    # selected or not (OSv numbers /init/30-auto-NN this way).
    next_sequence = 0

    def __init__(self, cmdline):
        self.cmdline = cmdline
        self.sequence = run_on_init.next_sequence
        run_on_init.next_sequence += 1
        resolve._note_event(('init', self.sequence))

    def prepare_manifest(self, build_dir, manifest_type, manifest):
        if manifest_type == 'usr':
            name = '30-auto-%02d' % self.sequence
            path = os.path.join(resolve.get_build_path(), name)
            with open(path, 'w') as f:
                f.write(self.cmdline)
            manifest.write('/init/%s: %s\n' % (name, path))


class java_app(object):
    def __init__(self):
        require('java')

    def get_multimain_lines(self):
        return []

    def get_jvm_args(self):
        return []


def get_string_object():
    return str


def _to_args_list(value):
    if not value:
        return []
    if isinstance(value, str):
        return value.split()
    return value


class run_java(java_app):
    def __init__(self, args=None, classpath=None, jvm_args=None):
        java_app.__init__(self)
        self.args = _to_args_list(args)
        self.classpath = classpath
        self.jvm_args = _to_args_list(jvm_args)

    def get_multimain_lines(self):
        words = []
        if self.classpath:
            words.append('-cp')
            words.append(':'.join(self.classpath))
        words.extend(self.args)
        return [' '.join(words)]

    def get_jvm_args(self):
        return self.jvm_args


class delayed(java_app):
    def __init__(self, app, delay=0):
        java_app.__init__(self)
        self.app = app
        self.delay = delay

    def get_multimain_lines(self):
        return ['sleep %d' % self.delay] + self.app.get_multimain_lines()

    def get_jvm_args(self):
        return self.app.get_jvm_args()
