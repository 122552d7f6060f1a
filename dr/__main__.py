import sys

from dr.cli.main import main

# `python -m dr` exits like the `dr` script: main() returns the exit code of click.exceptions.Exit.
rc = main()
sys.exit(rc if isinstance(rc, int) else 0)
