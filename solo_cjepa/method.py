"""C-JEPA as a solo-learn method: I-JEPA's context/target ViTs, masks and predictor, plus VICReg.

The context encoder is solo's ``backbone`` and the target encoder its EMA ``momentum_backbone``;
with ``vicreg_weight: 0`` the method is I-JEPA. Masks are drawn inside the training step on the
batch's device, so every solo data pipeline (DALI included) feeds it unchanged.
"""

import random
from typing import Any, Dict, Iterator, List, Sequence

import omegaconf
import torch
import torch.nn.functional as F
from solo.losses.vicreg import invariance_loss
from solo.methods.base import BaseMomentumMethod
from solo.utils.metrics import accuracy_at_k
from solo.utils.misc import omegaconf_select

from solo_cjepa.errors import ConfigError, note, require
from solo_cjepa.losses import (
    JEPA_LOSSES,
    VICREG_WEIGHTS,
    VICRegTerms,
    jepa_loss,
    vicreg_regularizer,
)
from solo_cjepa.masks import DEFAULT_MASKS, MultiBlockMaskGenerator
from solo_cjepa.monitors import effective_rank, mean_std
from solo_cjepa.predictor import PREDICTOR_LAYOUTS, JEPAPredictor
from solo_cjepa.schedules import MOMENTUM_SCHEDULES, EMAUpdater, cosine_ramp
from solo_cjepa.seeds import mix_seed
from solo_cjepa.vit import check_token_vit, embed_patches, encode, select_tokens, sincos_pos_embed

TARGET_EMBEDDINGS = ("blocks", "full")
# Our first names for the VICReg weights; solo's vicreg.yaml calls them *_loss_weight.
DEPRECATED_KWARGS = {f"{t}_weight": f"{t}_loss_weight" for t in ("sim", "var", "cov")}


class CJEPA(BaseMomentumMethod):
    def __init__(self, cfg: omegaconf.DictConfig):
        """C-JEPA (Mo & Tong, NeurIPS 2024) on a timm ViT.

        Extra cfg settings (defaults in ``add_and_assert_specific_cfg``):
            method_kwargs:
                pred_depth, pred_embed_dim, pred_num_heads (None: the encoder's heads): predictor.
                pred_layout (repeat | single): I-JEPA's one sequence per target block, or one
                    sequence per image (about half the predictor's cost; see JEPAPredictor).
                num_targets, target_scale, target_aspect_ratio, context_scale, min_keep: masks.
                loss_type (smooth_l1 | mse): prediction loss.
                vicreg_weight, sim_loss_weight, var_loss_weight, cov_loss_weight: the VICReg
                    term and its weights (solo's names; the older ``sim_weight`` etc. are read
                    with a deprecation note).
                target_embedding (blocks | full): the invariance target ``t``, the mean of the
                    target-encoder tokens over the target blocks or over the whole image.
                final_weight_decay (None: constant): cosine ramp of the weight decay from
                    optimizer.weight_decay to this value, on the decayed parameter groups.
                fixed_pos_embed: fixed 2-D sin-cos positional embedding in both encoders.
            performance:
                compile: ``torch.compile`` the encoders' blocks and the predictor.
            momentum:
                base_tau, final_tau: EMA momentum ramp of the target encoder.
                schedule (linear | cosine): I-JEPA's linear ramp or solo's cosine one.
        """
        super().__init__(cfg)
        kwargs = cfg.method_kwargs
        check_token_vit(self.backbone)
        grid_size = tuple(self.backbone.patch_embed.grid_size)

        try:
            self.mask_generator = MultiBlockMaskGenerator(
                grid_size,
                num_targets=kwargs.num_targets,
                target_scale=tuple(kwargs.target_scale),
                target_aspect_ratio=tuple(kwargs.target_aspect_ratio),
                context_scale=tuple(kwargs.context_scale),
                min_keep=kwargs.min_keep,
            )
        except ValueError as err:  # name the cfg section the mask settings live in
            raise ConfigError(f"method_kwargs: {err}") from err
        self.predictor = JEPAPredictor(
            grid_size,
            self.features_dim,
            predictor_embed_dim=kwargs.pred_embed_dim,
            depth=kwargs.pred_depth,
            num_heads=kwargs.pred_num_heads or self.backbone.blocks[0].attn.num_heads,
            layout=kwargs.pred_layout,
        )
        if kwargs.fixed_pos_embed:
            pos_embed = sincos_pos_embed(self.features_dim, grid_size)[None]
            for vit in (self.backbone, self.momentum_backbone):
                vit.pos_embed.data.copy_(pos_embed)
                vit.pos_embed.requires_grad_(False)
        self.momentum_updater = EMAUpdater(
            cfg.momentum.base_tau, cfg.momentum.final_tau, cfg.momentum.schedule
        )

        self.loss_type: str = kwargs.loss_type
        self.vicreg_weight: float = kwargs.vicreg_weight
        self.vicreg_weights = {key: kwargs[key] for key in VICREG_WEIGHTS}
        self.target_embedding: str = kwargs.target_embedding
        self.final_weight_decay = kwargs.final_weight_decay
        self.seed: int = omegaconf_select(cfg, "seed", 0)
        self.loss_terms: Dict[str, torch.Tensor] = {}
        self._mask_seeds: Iterator[int] = iter(())
        if cfg.performance.compile:
            self.compile_networks()

    def compile_networks(self) -> None:
        """``torch.compile`` in place (parameter names unchanged) for the transformer blocks of
        both encoders and for the predictor. The context length varies from batch to batch:
        after its second length torch recompiles each graph once with a symbolic length
        (automatic dynamic shapes) and reuses it from then on."""
        for module in (self.backbone.blocks, self.momentum_backbone.blocks, self.predictor):
            module.compile()

    @staticmethod
    def add_and_assert_specific_cfg(cfg: omegaconf.DictConfig) -> omegaconf.DictConfig:
        """Adds C-JEPA's defaults (I-JEPA's where they exist) and checks the settings.

        Args:
            cfg (omegaconf.DictConfig): DictConfig object.

        Returns:
            omegaconf.DictConfig: same as the argument, used to avoid errors.
        """
        # BaseMomentumMethod reads cfg.momentum.*, so the node must exist before its defaults run.
        cfg.momentum = omegaconf_select(cfg, "momentum", {})
        cfg.momentum.base_tau = omegaconf_select(cfg, "momentum.base_tau", 0.996)
        cfg.momentum.schedule = omegaconf_select(cfg, "momentum.schedule", "linear")
        vits = sorted(name for name in BaseMomentumMethod._BACKBONES if name.startswith("vit"))
        require(
            cfg.backbone.name in vits,
            f"cjepa needs a ViT backbone: backbone.name must be one of {vits}, "
            f"got {cfg.backbone.name!r}",
        )
        cfg.backbone.kwargs = omegaconf_select(cfg, "backbone.kwargs", {})
        for key, value in (("class_token", False), ("global_pool", "avg"), ("fc_norm", False)):
            cfg.backbone.kwargs[key] = omegaconf_select(cfg, f"backbone.kwargs.{key}", value)
        cfg = super(CJEPA, CJEPA).add_and_assert_specific_cfg(cfg)
        cfg.performance.compile = omegaconf_select(cfg, "performance.compile", False)
        require(
            isinstance(cfg.performance.compile, bool),
            f"performance.compile must be True or False, got {cfg.performance.compile!r}",
        )

        for old, new in DEPRECATED_KWARGS.items():
            if old in cfg.method_kwargs:
                note(f"method_kwargs.{old} is deprecated: read as {new}, solo-learn's VICReg name")
                cfg.method_kwargs.setdefault(new, cfg.method_kwargs[old])
                del cfg.method_kwargs[old]

        defaults = {
            "pred_depth": 6,
            "pred_embed_dim": 384,
            "pred_num_heads": None,
            "pred_layout": "repeat",
            **{k: list(v) if isinstance(v, tuple) else v for k, v in DEFAULT_MASKS.items()},
            "loss_type": "smooth_l1",
            "vicreg_weight": 0.001,
            **VICREG_WEIGHTS,
            "target_embedding": "blocks",
            "final_weight_decay": None,
            "fixed_pos_embed": True,
        }
        for key, value in defaults.items():
            cfg.method_kwargs[key] = omegaconf_select(cfg, f"method_kwargs.{key}", value)

        kwargs = cfg.method_kwargs
        require(
            kwargs.loss_type in JEPA_LOSSES,
            f"method_kwargs.loss_type must be one of {JEPA_LOSSES}, got {kwargs.loss_type!r}",
        )
        require(
            kwargs.pred_layout in PREDICTOR_LAYOUTS,
            f"method_kwargs.pred_layout must be one of {PREDICTOR_LAYOUTS}, "
            f"got {kwargs.pred_layout!r}",
        )
        require(
            kwargs.target_embedding in TARGET_EMBEDDINGS,
            f"method_kwargs.target_embedding must be one of {TARGET_EMBEDDINGS}, "
            f"got {kwargs.target_embedding!r}",
        )
        require(
            cfg.momentum.schedule in MOMENTUM_SCHEDULES,
            f"momentum.schedule must be one of {MOMENTUM_SCHEDULES}, got {cfg.momentum.schedule!r}",
        )
        for key in ("vicreg_weight", *VICREG_WEIGHTS):
            require(kwargs[key] >= 0, f"method_kwargs.{key} must be >= 0, got {kwargs[key]}")
        for key in ("pred_depth", "pred_embed_dim", "num_targets", "min_keep"):
            require(kwargs[key] >= 1, f"method_kwargs.{key} must be >= 1, got {kwargs[key]}")
        if kwargs.final_weight_decay is not None:
            require(
                kwargs.final_weight_decay >= 0 and cfg.optimizer.weight_decay > 0,
                "method_kwargs.final_weight_decay must be >= 0 (or null for a constant weight "
                "decay) and needs optimizer.weight_decay > 0 to ramp from",
            )
        require(
            cfg.data.num_large_crops in (1, 2) and cfg.data.num_small_crops == 0,
            "cjepa trains on 1 large crop (the paper's setting) or 2 (two-view mode) and no small "
            f"crops; the augmentations give {cfg.data.num_large_crops} large and "
            f"{cfg.data.num_small_crops} small crops",
        )
        require(
            not cfg.momentum.classifier or cfg.data.num_classes >= 5,
            "momentum.classifier needs data.num_classes >= 5 (solo-learn reports top-5 accuracy "
            "for it); set momentum.classifier: False",
        )
        return cfg

    @property
    def learnable_params(self) -> List[Dict[str, Any]]:
        """Adds the predictor to the parameters of the base class."""
        return super().learnable_params + [
            {"name": "predictor", "params": self.predictor.parameters()}
        ]

    def _channels_last(self, X: torch.Tensor) -> torch.Tensor:
        return X if self.no_channel_last else X.to(memory_format=torch.channels_last)

    def base_training_step(self, X: torch.Tensor, targets: torch.Tensor) -> Dict[str, Any]:
        """Encodes the visible context of a masked view and trains the online classifier on its
        pooled features (detached), as solo's MAE does.

        Returns solo's keys (``loss``, ``acc1``, ``acc5``, ``logits``, ``feats``) plus the
        context tokens ``[B, Kc, D]`` and the masks.
        """
        X = self._channels_last(X)
        tokens = embed_patches(self.backbone, X)
        if tokens.shape[1] != self.mask_generator.num_patches:
            raise ValueError(
                f"training crops of {tuple(X.shape[-2:])} px give {tokens.shape[1]} patches, but "
                f"backbone.kwargs.img_size expects {self.mask_generator.num_patches}: make the "
                "augmentations' crop_size equal backbone.kwargs.img_size"
            )
        # training_step sets one seed per view; a direct call draws a fresh one.
        seed = next(self._mask_seeds, None)
        seed = random.getrandbits(32) if seed is None else seed
        context_idx, target_idx = self.mask_generator(X.shape[0], seed, X.device)
        context = encode(self.backbone, select_tokens(tokens, context_idx))
        feats = context.mean(dim=1)

        logits = self.classifier(feats.detach())
        loss = F.cross_entropy(logits, targets, ignore_index=-1)
        acc1, acc5 = accuracy_at_k(logits, targets, top_k=(1, min(5, logits.shape[1])))
        return {
            "loss": loss,
            "acc1": acc1,
            "acc5": acc5,
            "logits": logits,
            "feats": feats,
            "context": context,
            "context_idx": context_idx,
            "target_idx": target_idx,
        }

    @torch.no_grad()
    def momentum_forward(self, X: torch.Tensor) -> Dict[str, Any]:
        """Target encoder on the full image: pooled ``feats`` ``[B, D]`` (what validation, the
        momentum classifier and linear evaluation see) and I-JEPA's layer-normed ``tokens``
        ``[B, N, D]`` (the prediction targets)."""
        tokens = encode(
            self.momentum_backbone, embed_patches(self.momentum_backbone, self._channels_last(X))
        )
        return {"feats": tokens.mean(dim=1), "tokens": F.layer_norm(tokens, tokens.shape[-1:])}

    def _view_mask_seeds(self, batch_idx: int) -> Iterator[int]:
        # Pure functions of (seed, rank, epoch, batch, view): masks are reproducible and a resumed
        # run draws the same masks as an uninterrupted one.
        seed = mix_seed(self.seed, self.global_rank, self.current_epoch, batch_idx)
        return iter([mix_seed(seed, view) for view in range(self.num_large_crops)])

    def _monitors_due(self) -> bool:
        """Whether this step's logged values reach the logger (every ``log_every_n_steps``
        steps, Lightning's flag); always true outside a Trainer."""
        return self._trainer is None or self.trainer._logger_connector.should_update_logs

    def _vicreg(
        self, context_embs: List[torch.Tensor], target_embs: List[torch.Tensor]
    ) -> VICRegTerms:
        """VICReg terms averaged over views; in two-view mode the two views' mean context
        embeddings must also agree. With vicreg_weight 0 (I-JEPA) they are only monitored."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.vicreg_weight > 0):
            per_view = [
                vicreg_regularizer(c, t, **self.vicreg_weights)
                for c, t in zip(context_embs, target_embs)
            ]
            terms = VICRegTerms(*(sum(values) / len(per_view) for values in zip(*per_view)))
            if len(context_embs) == 2:
                cross = invariance_loss(*context_embs)
                terms = terms._replace(
                    loss=terms.loss + self.vicreg_weights["sim_loss_weight"] * cross,
                    sim=terms.sim + cross,
                )
        return terms

    def training_step(self, batch: Sequence[Any], batch_idx: int) -> torch.Tensor:
        """Training step: I-JEPA's prediction loss, C-JEPA's VICReg term, solo's online classifier.

        Args:
            batch (Sequence[Any]): a batch of data in the format of [img_indexes, [X], Y], where
                [X] is a list of size self.num_crops containing batches of images.
            batch_idx (int): index of the batch.

        Returns:
            torch.Tensor: total loss; its terms, detached, are left in ``self.loss_terms`` for
            the run-health check (``jepa``, and ``vicreg_sim``, ``vicreg_var``, ``vicreg_cov``
            when ``vicreg_weight`` > 0).
        """
        self._mask_seeds = self._view_mask_seeds(batch_idx)
        out = super().training_step(batch, batch_idx)

        full_image = self.target_embedding == "full"
        jepa_losses, target_embs = [], []
        for view in range(self.num_large_crops):
            target_idx = out["target_idx"][view]
            pred = self.predictor(out["context"][view], out["context_idx"][view], target_idx)
            target_tokens = out["momentum_tokens"][view]
            target = select_tokens(target_tokens, target_idx)  # [B, M, Kt, D]
            jepa_losses.append(jepa_loss(pred, target, self.loss_type))
            target_embs.append(target_tokens.mean(dim=1) if full_image else target.mean(dim=(1, 2)))

        jepa = sum(jepa_losses) / self.num_large_crops
        vicreg = self._vicreg(out["feats"], target_embs)
        ssl_loss = jepa + self.vicreg_weight * vicreg.loss if self.vicreg_weight > 0 else jepa
        self.loss_terms = {"jepa": jepa.detach()}
        if self.vicreg_weight > 0:  # with weight 0 the VICReg terms are only monitored
            self.loss_terms.update(
                vicreg_sim=vicreg.sim.detach(),
                vicreg_var=vicreg.var.detach(),
                vicreg_cov=vicreg.cov.detach(),
            )

        losses = {
            "train_jepa_loss": jepa,
            "train_vicreg_loss": vicreg.loss,
            "train_vicreg_sim": vicreg.sim,
            "train_vicreg_var": vicreg.var,
            "train_vicreg_cov": vicreg.cov,
        }
        # Per step as computed on this process, per epoch averaged over processes: no collective
        # at every step. Lightning's own names for on_step + on_epoch, set by hand.
        self.log_dict({f"{k}_step": v for k, v in losses.items()}, on_step=True, on_epoch=False)
        self.log_dict(
            {f"{k}_epoch": v for k, v in losses.items()},
            on_step=False,
            on_epoch=True,
            sync_dist=True,
        )
        if self._monitors_due():
            context_emb, target_emb = out["feats"][0].detach(), out["momentum_feats"][0]
            monitors = {
                "train_context_tokens": float(out["context_idx"][0].shape[1]),
                "train_context_std": mean_std(context_emb),
                "train_context_rank": effective_rank(context_emb),
                "train_target_std": mean_std(target_emb),
                "train_target_rank": effective_rank(target_emb),
            }
            self.log_dict(monitors, on_step=True, on_epoch=False)
        # Unlabeled images (targets -1) make the classifiers' cross-entropy NaN with zero gradient.
        return ssl_loss + torch.nan_to_num(out["loss"])

    def on_train_start(self):
        super().on_train_start()
        # Brings tau to the current step, so a resumed run does not restart the EMA ramp.
        self.momentum_updater.update_tau(
            cur_step=self.trainer.global_step, max_steps=self.trainer.estimated_stepping_batches
        )

    def on_train_batch_start(self, batch: Sequence[Any], batch_idx: int):
        """Sets I-JEPA's cosine weight-decay ramp for this step on the decayed parameter groups."""
        if self.final_weight_decay is None:
            return
        weight_decay = cosine_ramp(
            self.trainer.global_step,
            self.trainer.estimated_stepping_batches,
            self.weight_decay,
            self.final_weight_decay,
        )
        for group in self.trainer.optimizers[0].param_groups:
            group.setdefault("base_weight_decay", group["weight_decay"])
            group["weight_decay"] = group["base_weight_decay"] * weight_decay / self.weight_decay
        self.log("weight_decay", weight_decay)
