"""Shortcut for `embedkit infer`: see `python infer.py --help`."""

from embedkit.cli import script

if __name__ == "__main__":
    script("infer")
