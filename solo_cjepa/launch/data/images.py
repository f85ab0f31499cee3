"""Image files as the launchers read them: a flat folder of unlabelled images (its image files
only), and the policy for a file that cannot be decoded (``data.unreadable_images``): ``skip``
(default) replaces it by the next readable image with one line naming it, and counts it for the
epoch's summary; ``fail`` stops the run with one ``error:`` line naming it.
"""

import multiprocessing
import os
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional, Union

from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS

from solo_cjepa.errors import ConfigError

UNREADABLE_POLICIES = ("skip", "fail")


class UnreadableImage(OSError):
    """An image file that PIL cannot decode; carries its path."""

    def __init__(self, path: Union[str, Path], reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


def read_rgb(path: Union[str, Path]) -> Image.Image:
    """The fully decoded RGB image at ``path`` (PIL decodes lazily, so a truncated file would
    otherwise fail later, inside a transform)."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise UnreadableImage(path, f"{type(err).__name__}: {err}") from None


def image_files(folder: Union[str, Path]) -> List[Path]:
    """The image files directly in ``folder`` (by torchvision's extensions), sorted; sub-folders
    and other files are not data."""
    return sorted(
        Path(entry.path)
        for entry in os.scandir(folder)
        if entry.is_file() and entry.name.lower().endswith(IMG_EXTENSIONS)
    )


class FlatImageFolder(Dataset):
    """Unlabelled images directly in one folder, target -1 (solo's ``CustomDatasetWithoutLabels``
    reads every entry, sub-folders and text files included)."""

    def __init__(self, root: Union[str, Path], transform: Optional[Callable] = None):
        self.samples = [(path, -1) for path in image_files(root)]
        if not self.samples:
            raise ConfigError(
                f"data.train_path={str(root)!r} holds no image files ({', '.join(IMG_EXTENSIONS)})"
            )
        self.transform = transform
        self.loader = read_rgb

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        image = self.loader(path)
        return (self.transform(image) if self.transform else image), target


class UnreadablePolicy(Dataset):
    """Applies ``data.unreadable_images`` to a dataset whose ``loader`` reads one file
    (torchvision's ``ImageFolder``, :class:`FlatImageFolder`). The count of skipped reads is
    shared with the loader's worker processes, so the epoch summary covers all of them."""

    def __init__(self, dataset: Any, policy: str, key: str):
        dataset.loader = read_rgb
        self.dataset, self.policy, self.key = dataset, policy, key
        self.skipped = multiprocessing.Value("i", 0)
        self._reported: set = set()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:  # transform, samples, ... of the wrapped dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, index: int):
        for offset in range(len(self.dataset)):
            try:
                return self.dataset[(index + offset) % len(self.dataset)]
            except UnreadableImage as err:
                if self.policy == "fail":
                    raise ConfigError(
                        f"{self.key}: cannot read image {err.path!r} ({err.reason}); remove it, "
                        "or set data.unreadable_images=skip"
                    ) from None
                with self.skipped.get_lock():
                    self.skipped.value += 1
                if err.path not in self._reported:
                    self._reported.add(err.path)
                    print(
                        f"[solo-cjepa] skipped unreadable image {err.path} ({err.reason})",
                        file=sys.stderr,
                        flush=True,
                    )
        raise ConfigError(f"{self.key}: no image in it can be read")

    def take_skipped(self) -> int:
        """Skipped reads since the last call."""
        with self.skipped.get_lock():
            count, self.skipped.value = self.skipped.value, 0
        return count
