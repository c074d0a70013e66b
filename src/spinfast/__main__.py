"""``python -m spinfast`` is the same command line as ``python -m spinfast.run``."""

import sys

from spinfast.run import main

if __name__ == "__main__":
    sys.exit(main())
