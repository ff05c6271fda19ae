#!/bin/sh
# toolbox entry point
. /usr/share/toolbox/lib/common.sh
toolbox_main "$@"
