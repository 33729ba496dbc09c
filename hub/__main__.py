"""python -m hub ... == jiancha hub ..."""

import sys

from hub.cli import main

sys.exit(main(sys.argv[1:]))
