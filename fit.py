"""Shortcut for `embedkit fit`: see `python fit.py --help`."""

from embedkit.cli import script

if __name__ == "__main__":
    script("fit")
