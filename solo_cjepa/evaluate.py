"""Command ``python -m solo_cjepa.evaluate``: the offline evaluation of one or both encoders of a
checkpoint (ours or an I-JEPA ``.pth.tar``), whose code lives in
:mod:`solo_cjepa.tools.offline_eval`."""

import sys

from solo_cjepa.tools.offline_eval import main

if __name__ == "__main__":
    sys.exit(main())
