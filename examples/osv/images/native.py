# The native apps only (no Java module): the image osvb boots in its tests and in
# `osvb run` with the prebuilt kernel. `image=native`.
from osv.modules import api

api.require_running('banner')        # run_on_init: /hello.so --motd /etc/motd
api.require_running('hello')         # the command line: /hello.so
