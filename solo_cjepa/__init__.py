"""C-JEPA for solo-learn: importing this package registers the method as ``"cjepa"``.

solo-learn has no plugin discovery, so every entry point (launchers, notebooks, tests) must import
``solo_cjepa`` before it looks up ``solo.methods.METHODS``.
"""

import warnings

SOLO_LEARN_INSTALL = (
    "pip install 'setuptools<82' && pip install --no-build-isolation "
    "'git+https://github.com/vturrisi/solo-learn.git@9187ea3'"
)

try:
    with warnings.catch_warnings():
        # solo-learn 1.0.6 imports APIs that newer timm, torch and setuptools deprecate and
        # re-registers timm's models: three dozen lines on every launch that concern no run.
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category)
        warnings.filterwarnings("ignore", message=".*pkg_resources")
        warnings.filterwarnings("ignore", message="Overwriting .* in registry")
        from solo.methods import METHODS
        from solo.methods.base import BaseMomentumMethod  # noqa: F401  (absent in PyPI's 1.0.2)
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "solo_cjepa needs solo-learn 1.0.6 (vturrisi/solo-learn at commit 9187ea3), which is not "
        f"importable here ({err}). PyPI's 'solo-learn' is an older, incompatible release; install "
        f"the real one with:\n    {SOLO_LEARN_INSTALL}"
    ) from err

from solo_cjepa import vit  # noqa: F401,E402  (registers vit_nano, vit_micro)
from solo_cjepa.method import CJEPA  # noqa: E402

METHODS["cjepa"] = CJEPA

__all__ = ["CJEPA", "METHODS"]
__version__ = "0.1.0"
