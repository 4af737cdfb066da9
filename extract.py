"""Shortcut for `embedkit extract`: see `python extract.py --help`."""

from embedkit.cli import script

if __name__ == "__main__":
    script("extract")
