"""Fixed 2-D sin-cos positional embeddings for a patch grid, as I-JEPA's encoder and predictor use.

A thin wrapper over solo-learn's MAE helper that also accepts non-square grids.
"""

from typing import Tuple

import numpy as np
import torch
from solo.utils.misc import generate_2d_sincos_pos_embed_from_grid


def sincos_pos_embed(embed_dim: int, grid_size: Tuple[int, int]) -> torch.Tensor:
    """Returns the ``[H*W, embed_dim]`` embedding of a row-major ``(H, W)`` patch grid."""
    height, width = grid_size
    grid = np.stack(
        np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    )
    embed = generate_2d_sincos_pos_embed_from_grid(embed_dim, grid.reshape(2, 1, height, width))
    return torch.from_numpy(embed).float()
