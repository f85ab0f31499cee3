"""The C-JEPA step's fast paths against their alternatives, on the same inputs: fused attention
(``F.scaled_dot_product_attention``, timm's default) or explicit softmax, the predictor's single
sequence or I-JEPA's repeated one, channels_last or NCHW images, bf16 autocast or fp32.

Each task is a forward and backward of one component at the shapes of a real step; run
``python3 -m bench.fastpaths`` (``--help`` for the settings).
"""

import argparse
import contextlib
from statistics import median
from typing import Callable, Dict, Optional, Sequence

import torch

from bench.methods import autocast, bf16_supported, build, default_device, image_batch
from bench.step import add_vit_arguments, recipe_settings
from bench.timing import interleave
from solo_cjepa.vit import embed_patches, encode, select_tokens


@contextlib.contextmanager
def fused_attention(modules: Sequence[torch.nn.Module], fused: bool):
    """Switches timm's attention layers between SDPA and the explicit softmax path."""
    layers = [m for module in modules for m in module.modules() if hasattr(m, "fused_attn")]
    before = [layer.fused_attn for layer in layers]
    for layer in layers:
        layer.fused_attn = fused
    try:
        yield
    finally:
        for layer, value in zip(layers, before):
            layer.fused_attn = value


def fastpath_tasks(spec: str, batch_size: int, device: torch.device, **recipe) -> Dict:
    """Pairs of timed tasks on one C-JEPA model and one batch of masks (``recipe``: ``build``'s
    recipe and ViT keywords)."""
    run = build(spec, batch_size, device, **recipe)
    model = run.model
    images = image_batch(run, batch_size, device)[1][0]
    context_idx, target_idx = model.mask_generator(batch_size, 0, device)
    tokens = embed_patches(model.backbone, images).detach()
    context_tokens = select_tokens(tokens, context_idx)
    context = encode(model.backbone, context_tokens).detach()
    predictor = model.predictor

    def encoder(fused: bool, precision: str = "32") -> Callable[[int], None]:
        def task(i: int) -> None:
            model.zero_grad(set_to_none=True)  # as the step does before its backward
            with fused_attention([model.backbone], fused), autocast(device, precision):
                loss = encode(model.backbone, context_tokens).float().square().mean()
            loss.backward()

        return task

    def predict(layout: str, fused: bool = True, precision: str = "32") -> Callable[[int], None]:
        def task(i: int) -> None:
            model.zero_grad(set_to_none=True)
            predictor.layout = layout
            with fused_attention([predictor], fused), autocast(device, precision):
                loss = predictor(context, context_idx, target_idx).float().square().mean()
            loss.backward()

        return task

    def patch_embed(channels_last: bool) -> Callable[[int], None]:
        layout = torch.channels_last if channels_last else torch.contiguous_format
        x = images.contiguous(memory_format=layout)

        def task(i: int) -> None:
            model.zero_grad(set_to_none=True)
            embed_patches(model.backbone, x).square().mean().backward()

        return task

    tasks = {
        "context encoder, fused attention": encoder(True),
        "context encoder, explicit attention": encoder(False),
        "predictor repeat, fused attention": predict("repeat"),
        "predictor repeat, explicit attention": predict("repeat", fused=False),
        "predictor single, fused attention": predict("single"),
        "patch embedding, channels_last": patch_embed(True),
        "patch embedding, NCHW": patch_embed(False),
    }
    if bf16_supported(device):
        tasks["context encoder, bf16, fused attention"] = encoder(True, "bf16")
        tasks["context encoder, bf16, explicit attention"] = encoder(False, "bf16")
        tasks["predictor repeat, bf16, fused attention"] = predict("repeat", precision="bf16")
        tasks["predictor repeat, bf16, explicit attention"] = predict("repeat", False, "bf16")
        tasks["predictor single, bf16, fused attention"] = predict("single", precision="bf16")
        tasks["predictor single, bf16, explicit attention"] = predict("single", False, "bf16")
    return tasks


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", default="cjepa", help="a C-JEPA spec, as in bench.step")
    add_vit_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    device = default_device(args.device)
    tasks = fastpath_tasks(args.method, args.batch_size, device, **recipe_settings(args))
    timings = interleave(tasks, args.repeats, 1, device)
    print(f"{args.method}, {args.recipe} recipe, batch {args.batch_size}: fwd+bwd, median ms")
    for name, seconds in timings.wall.items():
        print(f"{name:<46}{1e3 * median(seconds):>9.1f}")


if __name__ == "__main__":
    main()
