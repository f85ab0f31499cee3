"""Command ``python -m solo_cjepa.export``: a run's encoder for timm, Hugging Face transformers or
facebookresearch/ijepa, whose code lives in :mod:`solo_cjepa.tools.export`."""

import sys

from solo_cjepa.tools.export import main

if __name__ == "__main__":
    sys.exit(main())
