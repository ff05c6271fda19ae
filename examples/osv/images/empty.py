# No modules, no command line (OSv's images/empty.py; used by
# `--append-manifest`).
run = []
