#!/bin/sh

[ "$1" = pineapple-jobd ] || exit 0

GOT_VER=$(pineapple-jobd --version)
[ "$GOT_VER" = "pineapple-jobd $2" ] || {
	echo "Incorrect version: expected 'pineapple-jobd $2'; obtained '$GOT_VER'"
	exit 1
}

# The shipped configuration reads (every option at its default) ...
pineapple-jobd --config /etc/config/pineapple-jobd --print-config | grep -qx "daemon.workers=2" || {
	echo "--print-config does not show daemon.workers=2"
	exit 1
}

# ... and every module imports with the packages this one depends on.
python3 - << 'EOF_PY'
import importlib
import pkgutil
import sys

import pineapple

failed = []
for module in pkgutil.walk_packages(pineapple.__path__, "pineapple."):
    try:
        importlib.import_module(module.name)
    except ImportError as exc:
        failed.append("%s: %s" % (module.name, exc))
if failed:
    print("\n".join(failed))
    sys.exit(1)
EOF_PY
