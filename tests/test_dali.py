"""A few C-JEPA steps fed by NVIDIA DALI in CPU-only mode, through the shipped DALI yaml (solo's
DALI data module alone fails without CUDA). Skipped where ``nvidia.dali`` is not installed."""

import pytest
import torch
from cjepa_helpers import compose_config, fast_overrides, image_folder
from lightning.pytorch import Callback

from solo_cjepa.launch.run import pretrain

pytest.importorskip("nvidia.dali")


@pytest.mark.skipif(torch.cuda.is_available(), reason="exercises DALI's CPU-only mode")
def test_cpu_dali_pretraining_steps(tmp_path):
    images = image_folder(tmp_path / "train", num_classes=2, per_class=8)
    overrides = fast_overrides(tmp_path / "models", steps=2) + [
        f"data.train_path={images}",
        "data.val_path=null",
        "backbone.kwargs.img_size=32",
        "backbone.kwargs.patch_size=4",
        "augmentations.0.crop_size=32",
        "method_kwargs.num_targets=3",
        "method_kwargs.min_keep=4",
        "data.num_workers=1",  # DALI threads
        "dali.device=gpu",  # the yaml's setting: switched to cpu on this machine
    ]
    cfg = compose_config("pretrain", "imagenet-100", "cjepa-dali", overrides)
    assert cfg.data.format == "dali"

    seen = []

    class Spy(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append((batch[1][0].shape, batch[2].clone()))

    trainer = pretrain(cfg, callbacks=[Spy()])
    assert type(trainer.datamodule).__name__ == "PretrainDALI"
    assert trainer.global_step == 2
    assert [shape for shape, _ in seen] == [torch.Size([8, 3, 32, 32])] * 2
    assert set(torch.cat([labels for _, labels in seen]).tolist()) <= {0, 1}
    assert list((tmp_path / "models" / "cjepa").glob("*/*.ckpt"))
