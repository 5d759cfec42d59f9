#!/bin/sh

[ "$1" = python3-sh ] || exit 0

python3 - "$2" << 'EOF_PY'
import sys

import sh

if sh.__version__ != sys.argv[1]:
    print("Wrong version: " + sh.__version__)
    sys.exit(1)

output = sh.echo("hello", "world")
if output.exit_code != 0 or str(output) != "hello world\n":
    print("echo through sh gave %r (exit %d)" % (str(output), output.exit_code))
    sys.exit(1)

try:
    sh.false()
except sh.ErrorReturnCode_1:
    pass
else:
    print("sh.false() did not raise ErrorReturnCode_1")
    sys.exit(1)
EOF_PY
