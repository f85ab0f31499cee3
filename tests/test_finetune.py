"""Fine-tuning through ``main_linear.py``'s run (solo's ``LinearModel``) with each dataset's shipped
``finetune.yaml``: two steps change the loaded encoder's weights, where ``finetune=False`` leaves
them as loaded; every dataset ships one that composes and keeps its linear config's data."""

import pytest
import torch
from cjepa_helpers import REPO, compose_config, image_folder

from solo_cjepa.launch.run import build_method, linear, prepare_pretrain_cfg

DATASETS = ("fashion-mnist", "cifar", "imagenet-100", "imagenet", "custom")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """An untrained C-JEPA (vit_nano, 32 px) saved as a checkpoint, and the folder of images."""
    root = tmp_path_factory.mktemp("finetune")
    images = image_folder(root / "images", num_classes=5, per_class=4, size=32)
    torch.manual_seed(0)
    cfg = compose_config(
        "pretrain",
        "custom",
        "cjepa",
        [
            f"data.train_path={images}",
            f"data.val_path={images}",
            "backbone.name=vit_nano",
            "backbone.kwargs.img_size=32",
            "backbone.kwargs.patch_size=4",
            "augmentations.0.crop_size=32",
            "++method_kwargs.min_keep=4",
        ],
    )
    model = build_method(prepare_pretrain_cfg(cfg))
    torch.save({"state_dict": model.state_dict()}, root / "run.ckpt")
    return model, root


@pytest.mark.parametrize("finetune", [True, False])
def test_two_steps_change_the_encoder_only_when_fine_tuning(pretrained, finetune):
    model, root = pretrained
    overrides = [
        f"pretrained_feature_extractor={root / 'run.ckpt'}",
        "pretrained_encoder=target",
        f"data.train_path={root / 'images'}",
        f"data.val_path={root / 'images'}",
        "data.num_workers=0",
        "backbone.name=vit_nano",
        "backbone.kwargs.img_size=32",
        "backbone.kwargs.patch_size=4",
        "data.augmentations.crop_size=32",
        "optimizer.batch_size=8",
        "devices=1",
        "max_epochs=1",
        f"checkpoint.dir={root / str(finetune)}",
        "++limit_train_batches=2",
        "++enable_progress_bar=False",
        "++enable_model_summary=False",
        "++num_sanity_val_steps=0",
    ]
    # finetune.yaml's recipe as it is (AdamW, mixup/cutmix, RandAugment, label smoothing), or
    # the frozen probe of cjepa.yaml
    name = "finetune" if finetune else "cjepa"
    trainer = linear(compose_config("linear", "custom", name, overrides))
    assert trainer.global_step == 2
    tuned = trainer.lightning_module.backbone.state_dict()
    loaded = model.momentum_backbone.state_dict()
    changed = [key for key in loaded if not torch.equal(tuned[key].cpu(), loaded[key])]
    if finetune:
        assert "blocks.0.attn.qkv.weight" in changed and "patch_embed.proj.weight" in changed
    else:
        assert changed == []
    assert 0 <= float(trainer.callback_metrics["val_acc1"]) <= 100


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_dataset_ships_a_finetune_config(dataset):
    assert (REPO / "scripts" / "linear" / dataset / "finetune.yaml").is_file()
    frozen = compose_config("linear", dataset, "cjepa")
    tuned = compose_config("linear", dataset, "finetune")
    assert tuned.finetune and not frozen.finetune
    assert tuned.data == frozen.data and tuned.backbone == frozen.backbone
    assert tuned.optimizer.name == "adamw" and tuned.scheduler.name == "warmup_cosine"
    # solo's scheduler ignores layer_decay's lr_scale: not used
    assert tuned.optimizer.get("layer_decay", 0) == 0
