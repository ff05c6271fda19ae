# This module is not in a repository directory: config.json names it with an
# explicit `direct-dir` entry whose path ends in `/`, like OSv's `osvinit`
# entry. Its MODULE_DIR therefore ends in `/`, and `${MODULE_DIR}/motd` in
# usr.manifest becomes `.../extra/banner//motd` (kept verbatim, as OSv does).
from osv.modules import api

# The commands run /hello.so, so require it (banner -> hello -> libgreet).
api.require('hello')

# run_on_init() writes the command into BUILD/30-auto-NN and maps it to
# /init/30-auto-NN; the guest runs /init/* before the main command line.
# NN is taken from a counter when the object is created, so `quiet` gets the
# number after `show` whether it is selected or not.
show = api.run_on_init('/hello.so --motd /etc/motd')
quiet = api.run_on_init('/hello.so --version')

default = show
