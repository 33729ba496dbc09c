"""python -m agent ... == jiancha agent ..."""
import sys

from provisioning.cli import main

sys.exit(main(["agent", *sys.argv[1:]]))
