"""Allow `python -m k2sim ...`."""

import sys

from k2sim.cli import main

if __name__ == "__main__":
    sys.exit(main())
