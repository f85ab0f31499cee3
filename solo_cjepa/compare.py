"""Command ``python -m solo_cjepa.compare``: the side-by-side comparison, whose code lives in
:mod:`solo_cjepa.tools.compare`."""

import sys

from solo_cjepa.tools.compare.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
