"""Fashion-MNIST, the offline default: read straight from the IDX files of Debian's
``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``, gzipped or not), or else from a
torchvision download; a clear error when neither is possible.
"""

import gzip
from pathlib import Path
from typing import Callable, Iterator, Optional, Tuple, Union

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms

from solo_cjepa.errors import ConfigError
from solo_cjepa.launch.data.holdout import FRACTION_SEED, stratified_sample

NAME = "fashion-mnist"
NUM_CLASSES = 10
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}  # fmt: skip


def read_idx(path: Union[str, Path]) -> np.ndarray:
    """Reads an IDX file (optionally gzipped) of unsigned bytes into an array of its shape."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = data[0] << 8 | data[1], data[2], data[3]
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(folder: Path, stem: str) -> Optional[Path]:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def load_arrays(
    path: Union[str, Path], train: bool, download_dir: Union[str, Path]
) -> Tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 28, 28]`` and labels ``[N]`` (uint8) of one split.

    Looks for the IDX files in ``path``; if they are not there, uses torchvision's copy in
    ``download_dir``, downloading it if needed.
    """
    found = [_find(Path(path), stem) for stem in _FILES[train]]
    if all(found):
        return read_idx(found[0]), read_idx(found[1])

    from torchvision.datasets import FashionMNIST

    try:
        dataset = FashionMNIST(str(download_dir), train=train, download=True)
    except Exception as err:  # torchvision raises RuntimeError or URLError when offline
        raise ConfigError(
            f"data.train_path={str(path)!r} has no Fashion-MNIST IDX files ({_FILES[train][0]}"
            f"[.gz], {_FILES[train][1]}[.gz]) and downloading them into data.download_dir="
            f"{str(download_dir)!r} failed ({type(err).__name__}: {err}); install Debian's "
            f"package (apt-get install dataset-fashion-mnist, files in {DEBIAN_DIR}) or point "
            "data.train_path at a folder with those files"
        ) from None
    return dataset.data.numpy(), dataset.targets.numpy()


class FashionMNIST(Dataset):
    def __init__(
        self,
        path: Union[str, Path] = DEBIAN_DIR,
        train: bool = True,
        transform: Optional[Callable] = None,
        download_dir: Union[str, Path] = "datasets",
        fraction: float = -1.0,
    ):
        """Fashion-MNIST as RGB PIL images (grey copied to three channels, so solo's pipelines
        and 3-channel backbones apply unchanged).

        Args:
            path: folder with the IDX files (Debian's by default).
            train: the 60k training split, else the 10k test split.
            transform: applied to each PIL image.
            download_dir: where torchvision keeps its copy when ``path`` has none.
            fraction: in (0, 1), a class-stratified subset of that size (solo's ``data.fraction``).
        """
        images, targets = load_arrays(path, train, download_dir)
        if 0 < fraction < 1:
            keep = stratified_sample(targets, fraction, FRACTION_SEED)
            images, targets = images[keep], targets[keep]
        self.images = images
        self.targets = torch.from_numpy(targets.astype(np.int64))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def batches(self, batch_size: int) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """``(images, labels)`` batches of the whole set in order, the transform applied to whole
        batches: what a loader of :meth:`__getitem__` gives for a deterministic tensor transform
        (``Compose`` of ``ToTensor`` and tensor transforms such as ``Resize`` and ``Normalize``),
        without a PIL image per sample."""
        steps = self.transform.transforms if self.transform is not None else [transforms.ToTensor()]
        for start in range(0, len(self.targets), batch_size):
            grey = torch.from_numpy(self.images[start : start + batch_size].copy()).unsqueeze(1)
            images = grey.expand(-1, 3, -1, -1)  # .convert("RGB") of each image
            for step in steps:
                if isinstance(step, transforms.ToTensor):
                    images = images.float().div(255)
                else:
                    images = step(images)
            yield images, self.targets[start : start + batch_size]

    def __getitem__(self, index: int):
        image = Image.fromarray(self.images[index]).convert("RGB")
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.targets[index])
