# Image configuration used by `osvb build` (and OSv's scripts/build) when no
# image= is given: `image=default` means `module.py build -c '!default'`.
#
# Modules are whatever this file requires, transitively. require_running()
# also selects the run configuration to start (`default` unless a name is
# given); the command line is `run` followed by those configurations.
from osv.modules import api

api.require('webdocs')
api.require('toolbox')

api.require_running('banner')        # run_on_init: /init/30-auto-NN
api.require_running('hello')         # native app: /hello.so
api.require_running('greeter-java')  # Java app, started by the JVM launcher

run = []
