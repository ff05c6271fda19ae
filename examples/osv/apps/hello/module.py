from osv.modules import api

# hello.so is linked against libgreet.so (see Makefile).
api.require('libgreet')

# Run configurations: `image=hello` or `modules=hello` runs `default`,
# `modules=hello.world` runs `world`, `modules=hello.version` runs `version`.
default = api.run('/hello.so')
world = api.run(['/hello.so', 'world'])
version = api.run('/hello.so --version')
