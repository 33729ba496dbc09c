"""python -m hub ... == jiancha hub ..."""
import sys

from provisioning.cli import main

sys.exit(main(["hub", *sys.argv[1:]]))
