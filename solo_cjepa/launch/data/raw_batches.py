"""A training loader of an in-memory image set that yields whole batches of raw uint8 images, one
array indexing per batch: what the batched augmentations start from, on the run's device. With no
per-image work there is nothing for worker processes to do, so the loader runs in the trainer's.
"""

import warnings
from typing import List, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_convert


class RawBatches(Dataset):
    def __init__(self, images: np.ndarray, targets: torch.Tensor):
        """Batches ``[indexes, images [B, 1, H, W] uint8, targets]`` of grey ``images``
        ``[N, H, W]``: solo's batch layout, the images not yet cropped."""
        self.images = images
        self.targets = targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitems__(self, indices: Sequence[int]) -> List[torch.Tensor]:
        # The DataLoader hands the whole batch of sampler indices here, in place of B __getitem__
        # calls and a collate: one fancy-indexing copy of the batch.
        indexes = torch.as_tensor(indices)
        images = torch.from_numpy(self.images[np.asarray(indices)]).unsqueeze(1)
        return [indexes, images, self.targets[indexes]]


def raw_batch_loader(dataset: RawBatches, batch_size: int) -> DataLoader:
    """solo's training loader (shuffled, last incomplete batch dropped, pinned) of ``dataset``'s
    batches; Lightning swaps in its distributed sampler under DDP as for any loader."""
    # Lightning's hint to add workers to a training loader without any does not apply here.
    warnings.filterwarnings("ignore", message=".*'train_dataloader' does not have many workers")
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=0,
        pin_memory=True,
        # __getitems__ gives the batch collated; default_convert passes its tensors through
        collate_fn=default_convert,
    )
