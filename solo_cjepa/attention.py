"""Command ``python -m solo_cjepa.attention``: the figure of last-layer attention maps, whose code
lives in :mod:`solo_cjepa.tools.attention_maps`."""

import sys

from solo_cjepa.tools.attention_maps import main

if __name__ == "__main__":
    sys.exit(main())
