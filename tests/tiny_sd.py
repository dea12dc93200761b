"""A tiny Stable Diffusion pipeline and a tiny captioned image folder, built offline.

The pipeline is made from configs (UNet2DConditionModel, AutoencoderKL, CLIPTextModel, a
CLIPTokenizer over a small local vocab) and saved with save_pretrained, so tests load it
through the same from_pretrained path a real pipeline takes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

WORDS = [
    "a",
    "digit",
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
]
SIZE = 16  # images; the VAE below halves them once, so latents are 4 x 8 x 8


def build_pipeline(path: Path) -> Path:
    import torch
    from diffusers import (
        AutoencoderKL,
        DDPMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=SIZE // 2,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=SIZE,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=16,
            intermediate_size=32,
            num_attention_heads=2,
            num_hidden_layers=1,
            vocab_size=len(WORDS) + 2,
            max_position_embeddings=16,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    vocab_dir = path.parent / f"{path.name}-vocab"
    vocab_dir.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    vocab.update({f"{w}</w>": i + 2 for i, w in enumerate(WORDS)})
    (vocab_dir / "vocab.json").write_text(json.dumps(vocab))
    (vocab_dir / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(
        str(vocab_dir / "vocab.json"), str(vocab_dir / "merges.txt"), model_max_length=16
    )
    scheduler = DDPMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        steps_offset=1,
    )
    StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    ).save_pretrained(path)
    return path


def captioned_digits(path: Path, n: int) -> Path:
    """`n` sklearn digits as 16x16 RGB PNGs with captions "a digit three" in captions.jsonl."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    path.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        pixels = (digits.images[i] * (255 / 16)).astype(np.uint8)
        image = Image.fromarray(pixels).resize((SIZE, SIZE), Image.NEAREST).convert("RGB")
        image.save(path / f"{i:04d}.png")
        text = f"a digit {WORDS[2 + int(digits.target[i])]}"
        lines.append(json.dumps({"file": f"{i:04d}.png", "text": text}))
    (path / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return path
