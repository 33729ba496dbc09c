"""python -m agent ... == jiancha agent ..."""

import sys

from agent.cli import main

sys.exit(main(sys.argv[1:]))
