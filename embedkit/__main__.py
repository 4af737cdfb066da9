"""``python -m embedkit`` = the ``embedkit`` command."""

import sys

from embedkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
