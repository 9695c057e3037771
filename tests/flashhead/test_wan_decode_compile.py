"""The Pro variant's compiled Wan VAE: compiled once in the first chunk, never again, and numerically diffusers' own.

Inductor compiles for the CPU too (slowly: the tiniest Wan layout that keeps both temporal up- and downsamplers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import torch
from diffusers import AutoencoderKLWan
from torch._dynamo.utils import counters

from avatar.engines.flashhead.vae import WanCodec
from tests.flashhead.tiny_checkpoint import randomise

TINIEST_WAN = {"base_dim": 4, "dim_mult": [1, 1, 1], "num_res_blocks": 0, "temperal_downsample": [True, True]}
LATENT_SIZE = 2
VIDEO_SIZE = 4 * LATENT_SIZE  # two spatial up- and downsamplers
CHUNK_LATENT_FRAMES = 9  # as Pro's 33-frame chunk
MOTION_FRAMES = 5


@pytest.fixture(scope="module")
def codecs() -> tuple[WanCodec, WanCodec]:
    """The same tiny VAE behind an uncompiled codec (diffusers' own loops) and a compiled one."""
    vae = AutoencoderKLWan(**TINIEST_WAN)
    randomise(vae, 11)
    compiled = WanCodec(vae)
    compiled.compile()
    return WanCodec(vae), compiled


@contextmanager
def nothing_compiled() -> Iterator[None]:
    """Fails if anything is compiled inside: no new graph, and a recompile raises at once."""
    before = counters["stats"]["unique_graphs"]
    with torch.compiler.set_stance("fail_on_recompile"):
        yield
    assert counters["stats"]["unique_graphs"] == before


def graphs_and_breaks(run: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, int, int]:
    """`run()`, with the graphs it compiled and the graph breaks it met."""
    graphs, breaks = counters["stats"]["unique_graphs"], sum(counters["graph_break"].values())
    out = run()
    return out, counters["stats"]["unique_graphs"] - graphs, sum(counters["graph_break"].values()) - breaks


def chunk_latents(seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(1, 16, CHUNK_LATENT_FRAMES, LATENT_SIZE, LATENT_SIZE, generator=generator)


def test_the_compiled_wan_decoder_compiles_two_graphs_in_the_first_chunk_none_after_and_matches_diffusers(codecs):
    eager, compiled = codecs
    first, second = chunk_latents(0), chunk_latents(1)
    video, graphs, breaks = graphs_and_breaks(lambda: compiled.decode(first))
    assert (graphs, breaks) == (2, 0)  # the first two latent frames, then one step for every later frame
    assert video.shape == (1, 3, 1 + 4 * (CHUNK_LATENT_FRAMES - 1), VIDEO_SIZE, VIDEO_SIZE)
    torch.testing.assert_close(video, eager.decode(first), rtol=1e-5, atol=1e-5)
    with nothing_compiled():
        video = compiled.decode(second)
    torch.testing.assert_close(video, eager.decode(second), rtol=1e-5, atol=1e-5)


def test_the_compiled_wan_encoder_compiles_two_graphs_for_the_reference_none_for_motion_and_matches_diffusers(codecs):
    eager, compiled = codecs
    generator = torch.Generator().manual_seed(2)
    still = torch.rand(1, 3, 1, VIDEO_SIZE, VIDEO_SIZE, generator=generator) * 2 - 1
    reference = still.expand(-1, -1, 1 + 4 * (CHUNK_LATENT_FRAMES - 1), -1, -1)  # as a session starts
    latents, graphs, breaks = graphs_and_breaks(lambda: compiled.encode(reference))
    assert (graphs, breaks) == (2, 0)
    torch.testing.assert_close(latents, eager.encode(reference), rtol=1e-5, atol=1e-5)
    with nothing_compiled():
        for seed in (3, 4):  # the last frames of two decoded chunks, as the pipeline slices them
            chunk = torch.rand(1, 3, 33, VIDEO_SIZE, VIDEO_SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1
            motion = compiled.encode(chunk[:, :, -MOTION_FRAMES:])
            torch.testing.assert_close(motion, eager.encode(chunk[:, :, -MOTION_FRAMES:]), rtol=1e-5, atol=1e-5)
