"""``python -m embedkit.evaluate ...`` = ``embedkit evaluate ...`` (kept for the commands in the README)."""

import sys

from embedkit.cli import main

sys.exit(main(["evaluate", *sys.argv[1:]]))
