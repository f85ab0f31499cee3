"""The CJEPA solo method: registration, shapes, loss composition, EMA, online eval and fits on CPU
(including DDP with find_unused_parameters=False, which catches parameters that get no gradient)."""

import importlib
import math
import subprocess
import sys

import pytest
import torch
from cjepa_helpers import cpu_trainer, image_batch, pretrain_loader, tiny_vit_cfg, val_loader
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import DDPStrategy
from solo.methods import METHODS
from solo.utils.misc import generate_2d_sincos_pos_embed

import solo_cjepa
from solo_cjepa.method import CJEPA
from solo_cjepa.schedules import cosine_ramp


def build(**kwargs):
    crops = kwargs.pop("num_large_crops", 1)
    torch.manual_seed(0)
    return CJEPA(tiny_vit_cfg(num_large_crops=crops, **kwargs))


def test_import_registers_cjepa_and_importing_again_is_harmless():
    assert METHODS["cjepa"] is CJEPA
    importlib.reload(solo_cjepa)
    assert METHODS["cjepa"].__name__ == "CJEPA"
    assert "byol" in METHODS and "vicreg" in METHODS


def test_missing_solo_learn_gives_an_install_hint():
    code = "import sys; sys.modules['solo'] = None; import solo_cjepa"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "ImportError" in result.stderr and "solo-learn.git@9187ea3" in result.stderr


def test_forward_training_and_momentum_shapes():
    model = build()
    model.eval()
    x = torch.randn(4, 3, 32, 32)
    out = model(x)
    assert out["logits"].shape == (4, 10) and out["feats"].shape == (4, 64)
    model.train()
    step = model.base_training_step(x, torch.arange(4))
    B, M, Kt = step["target_idx"].shape
    Kc = step["context_idx"].shape[1]
    assert (B, M) == (4, 4) and step["context"].shape == (4, Kc, 64) and Kc < 64
    torch.testing.assert_close(step["feats"], step["context"].mean(1))
    assert {"loss", "acc1", "acc5", "logits"} <= step.keys()
    momentum = model.momentum_forward(x)
    assert momentum["tokens"].shape == (4, 64, 64) and momentum["feats"].shape == (4, 64)
    tokens = momentum["tokens"]  # I-JEPA's targets: layer norm without affine over D
    torch.testing.assert_close(tokens.mean(-1), torch.zeros(4, 64), atol=1e-5, rtol=0)
    torch.testing.assert_close(tokens.var(-1, unbiased=False), torch.ones(4, 64), atol=1e-3, rtol=0)


def test_eval_features_are_the_mean_pooled_full_image_tokens():
    model = build().eval()
    x = torch.randn(2, 3, 32, 32)
    tokens = model.backbone.forward_features(x)
    torch.testing.assert_close(model(x)["feats"], tokens.mean(1))


def test_learnable_params_hold_encoder_predictor_and_classifiers_but_not_the_target():
    model = build(num_large_crops=1)
    params = {id(p) for group in model.learnable_params for p in group["params"]}
    assert all(id(p) in params for p in model.predictor.parameters())
    assert all(id(p) in params for p in model.backbone.parameters())
    assert not any(id(p) in params for p in model.momentum_backbone.parameters())


def logged_step(model, batch):
    logged = {}
    # The per-step values, under their plain names (the method also logs them as *_epoch).
    model.log_dict = lambda metrics, **_: logged.update(
        {k.removesuffix("_step"): v for k, v in metrics.items() if not k.endswith("_epoch")}
    )
    model.log = lambda name, value, **_: logged.update({name: value})
    loss = model.training_step(batch, 0)
    return loss, logged


class RecordingMasks:
    """Stands in for the model's mask generator and keeps what it returned, so a reference step
    can use the same masks whatever the generator's call looks like."""

    def __init__(self, generator):
        self.generator, self.calls = generator, []

    def __call__(self, *args, **kwargs):
        self.calls.append(self.generator(*args, **kwargs))
        return self.calls[-1]

    def __getattr__(self, name):
        return getattr(self.generator, name)


def ijepa_reference(model, images, context_idx, target_idx):
    """One I-JEPA step written out from facebookresearch/ijepa (src/train.py and
    src/models/vision_transformer.py) on the model's weights: the context encoder on the kept
    patches, the predictor with one sequence of context plus mask tokens per target block, and
    smooth-L1 against the layer-normed target-encoder tokens of those blocks. Also returns the
    per-image means C-JEPA's VICReg terms act on (context tokens, target-block tokens)."""
    enc, target_enc, pred = model.backbone, model.momentum_backbone, model.predictor
    gather = lambda x, idx: torch.stack([x[b, idx[b]] for b in range(x.shape[0])])  # noqa: E731
    with torch.no_grad():
        h = target_enc.forward_features(images)  # timm's full-image forward
        h = torch.nn.functional.layer_norm(h, (h.shape[-1],))
    x = enc.patch_embed(images) + enc.pos_embed
    z = enc.norm(enc.blocks(gather(x, context_idx)))
    grid = int(round(math.sqrt(x.shape[1])))
    pos = torch.from_numpy(generate_2d_sincos_pos_embed(pred.embed.out_features, grid)).float()
    ctx = pred.embed(z) + pos[context_idx]
    losses, targets = [], []
    for m in range(target_idx.shape[1]):
        queries = pred.mask_token + pos[target_idx[:, m]]
        out = pred.blocks(torch.cat([ctx, queries], dim=1))
        prediction = pred.proj(pred.norm(out)[:, ctx.shape[1] :])
        target = gather(h, target_idx[:, m])
        losses.append(torch.nn.functional.smooth_l1_loss(prediction, target, reduction="none"))
        targets.append(target)
    jepa = torch.cat(losses, dim=1).mean()
    return jepa, z.mean(1), torch.cat(targets, dim=1).mean(1)


def vicreg_reference(c, t):
    """VICReg (Bardes et al. 2022) on one branch: invariance to t, variance and covariance of c."""
    sim = torch.nn.functional.mse_loss(c, t)
    var = torch.relu(1 - torch.sqrt(c.var(dim=0) + 1e-4)).mean()
    centred = c - c.mean(0)
    cov = centred.T @ centred / (c.shape[0] - 1)
    off_diagonal = cov - torch.diag(torch.diag(cov))
    return 25 * sim + 25 * var + off_diagonal.pow(2).sum() / c.shape[1]


@pytest.mark.parametrize("vicreg_weight", [0.0, 0.5])
@pytest.mark.parametrize("layout", ["repeat", "single"])
def test_training_loss_matches_an_ijepa_step_written_from_the_official_algorithm(
    vicreg_weight, layout
):
    model = build(vicreg_weight=vicreg_weight, pred_layout=layout, pred_depth=2)
    masks = model.mask_generator = RecordingMasks(model.mask_generator)
    batch = image_batch(batch_size=8)
    loss, logged = logged_step(model, batch)
    context_idx, target_idx = masks.calls[-1]
    jepa, c, t = ijepa_reference(model, batch[1][0], context_idx, target_idx)
    if layout == "repeat":  # I-JEPA's predictor itself
        torch.testing.assert_close(logged["train_jepa_loss"], jepa)
    else:  # I-JEPA's predictor with the context blind to the mask tokens (test_predictor_layout)
        jepa = logged["train_jepa_loss"]
    classifier = torch.nn.functional.cross_entropy(model.classifier(c.detach()), batch[2])
    expected = jepa + vicreg_weight * vicreg_reference(c, t.detach()) + classifier
    torch.testing.assert_close(loss, expected)


def test_unlabeled_batch_trains_with_a_finite_loss():
    model = build()
    loss, logged = logged_step(model, image_batch(labeled=False))
    assert torch.isnan(logged["train_class_loss"]) and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize(
    "override,key",
    [
        ({"loss_type": "l1"}, "loss_type"),
        ({"vicreg_weight": -1.0}, "vicreg_weight"),
        ({"cov_loss_weight": -0.1}, "cov_loss_weight"),
        ({"target_embedding": "cls"}, "target_embedding"),
        ({"num_targets": 0}, "num_targets"),
        ({"final_weight_decay": -0.4}, "final_weight_decay"),
        ({"num_large_crops": 3}, "large"),
        ({"min_keep": 30}, "min_keep"),
        ({"context_scale": [0.5, 1.5]}, "context_scale"),
    ],
)
def test_bad_settings_raise_value_errors_naming_the_key(override, key):
    with pytest.raises(ValueError, match=key):
        build(**override)


def test_backbone_must_be_a_token_vit():
    cfg = tiny_vit_cfg()
    cfg.backbone.kwargs.class_token = True
    with pytest.raises(ValueError, match="class_token"):
        CJEPA(cfg)
    cfg = tiny_vit_cfg()
    cfg.backbone = {"name": "resnet18"}
    with pytest.raises(ValueError, match="ViT"):
        CJEPA(cfg)


class Snapshots(Callback):
    """Records online and target weights and the step count before every batch and at the end
    (Lightning runs callbacks' batch-end hooks before the module's, i.e. before the EMA update)."""

    def __init__(self):
        self.online, self.target, self.steps = [], [], []

    def on_train_batch_start(self, trainer, module, *args):
        self.online.append(module.backbone.blocks[0].mlp.fc1.weight.detach().clone())
        self.target.append(module.momentum_backbone.blocks[0].mlp.fc1.weight.detach().clone())
        self.steps.append(trainer.global_step)

    on_train_end = on_train_batch_start


def test_ema_target_starts_equal_and_moves_only_after_an_optimizer_step():
    model = build()
    for online, target in zip(model.backbone.parameters(), model.momentum_backbone.parameters()):
        assert torch.equal(online, target) and not target.requires_grad
    snaps = Snapshots()
    cpu_trainer(max_steps=4, accumulate_grad_batches=2, callbacks=[snaps]).fit(
        model, pretrain_loader()
    )
    assert snaps.steps == [0, 0, 1, 1, 2]
    assert torch.equal(snaps.online[0], snaps.target[0])
    assert torch.equal(snaps.target[1], snaps.target[0]), "no optimizer step yet: target untouched"
    tau = 0.996  # the first update uses base_tau: target = tau * target + (1 - tau) * online
    torch.testing.assert_close(snaps.target[2], tau * snaps.target[1] + (1 - tau) * snaps.online[2])
    assert not torch.equal(snaps.target[2], snaps.target[1])
    assert torch.equal(snaps.target[3], snaps.target[2]), "accumulating batch: no EMA update"
    assert not torch.equal(snaps.target[4], snaps.target[3])


@pytest.mark.parametrize("crops", [1, 2])
def test_ddp_fit_without_unused_parameters(crops):
    model = build(num_large_crops=crops, final_weight_decay=0.4)
    trainer = cpu_trainer(
        max_steps=2, strategy=DDPStrategy(find_unused_parameters=False), log_every_n_steps=1
    )
    trainer.fit(model, pretrain_loader(num_large_crops=crops), val_loader())
    metrics = trainer.callback_metrics
    assert math.isfinite(metrics["train_jepa_loss_epoch"]) and "val_acc1" in metrics
    assert metrics["train_context_rank"] > 1 and metrics["train_target_std"] > 0
    torch.distributed.destroy_process_group()  # Lightning leaves it up; later tests run alone


def test_fit_with_knn_momentum_classifier_and_weight_decay_ramp():
    # solo's kNN takes the class count from the validation labels it saw: five classes, all in the
    # first two validation batches, keep every retrieved training label in range.
    cfg = tiny_vit_cfg(num_classes=5, final_weight_decay=0.4)
    cfg.knn_eval = {"enabled": True, "k": 3}
    cfg.momentum.classifier = True
    model = CJEPA(cfg)
    pos_embed = model.backbone.pos_embed.detach().clone()
    trainer = cpu_trainer(max_steps=3)
    trainer.fit(model, pretrain_loader(num_classes=5, size=24), val_loader(num_classes=5, size=32))
    metrics = trainer.callback_metrics
    for key in ("val_knn_acc1", "momentum_val_acc1", "val_acc1"):
        assert key in metrics
    # The ramp sets this step's value before the step: the last step ran with step 2 of 3.
    groups = trainer.optimizers[0].param_groups
    decayed = [g for g in groups if g["base_weight_decay"] > 0]
    assert decayed and all(
        g["weight_decay"] == pytest.approx(cosine_ramp(2, 3, 0.04, 0.4)) for g in decayed
    )
    assert all(g["weight_decay"] == 0 for g in groups if g["base_weight_decay"] == 0)
    # I-JEPA's fixed sin-cos positions (MAE's table, as solo-learn builds it): frozen, identical in
    # both encoders.
    table = torch.from_numpy(generate_2d_sincos_pos_embed(64, 8)).float()
    torch.testing.assert_close(pos_embed[0], table)
    assert (
        torch.equal(model.backbone.pos_embed, pos_embed)
        and not model.backbone.pos_embed.requires_grad
    )
    torch.testing.assert_close(model.momentum_backbone.pos_embed, pos_embed)  # EMA of equal values
