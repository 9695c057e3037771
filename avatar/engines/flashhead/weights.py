"""Finds the FlashHead and wav2vec2 weights: a local folder, or a hub id fetched once into the HF cache.

Only the chosen variant's files are fetched (Lite: Model_Lite + VAE_LTX; Pro: Model_Pro + VAE_Wan).
Anything a user can fix (offline without a cache, a wrong folder, a missing file) becomes
EngineUnavailable with a message saying what to do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import torch
from diffusers import ModelMixin
from huggingface_hub import snapshot_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
)
from safetensors.torch import load_file
from tqdm.auto import tqdm

from avatar.engines.base import EngineUnavailable
from avatar.engines.spec import Progress

ModuleT = TypeVar("ModuleT", bound=ModelMixin)


@dataclass(frozen=True)
class VariantFiles:
    """Where one variant's pieces live inside the published repository."""

    model_dir: str
    vae_path: str
    patterns: tuple[str, ...]


VARIANTS = {
    "lite": VariantFiles("Model_Lite", "VAE_LTX", ("Model_Lite/*", "VAE_LTX/*")),
    "pro": VariantFiles("Model_Pro", "VAE_Wan/Wan2.1_VAE.pth", ("Model_Pro/*", "VAE_Wan/Wan2.1_VAE.pth")),
}
WAV2VEC2_FILES = ("config.json", "preprocessor_config.json", "model.safetensors")


def variant_files(variant: str) -> VariantFiles:
    """The files of `variant` ('lite' or 'pro'), or EngineUnavailable naming the choices."""
    try:
        return VARIANTS[variant]
    except KeyError:
        raise EngineUnavailable(
            f"Unknown FlashHead variant '{variant}'. Set AVATAR_FLASHHEAD_VARIANT to 'lite' or 'pro'."
        ) from None


def _progress_bar(progress: Progress | None, label: str) -> type[tqdm] | None:
    """A tqdm class that reports the hub's file-count progress to `progress`."""
    if progress is None:
        return None

    class _Reporter(tqdm):
        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            if self.total:
                progress(min(self.n / self.total, 1.0), label)
            return shown

    return _Reporter


def _fetch(source: str, patterns: tuple[str, ...], what: str, setting: str, progress: Progress | None) -> Path:
    """A local folder as it is, else a snapshot of hub repo `source` restricted to `patterns`."""
    local = Path(source).expanduser()
    if local.is_dir():
        return local
    if source.startswith(("/", ".", "~")) or source.count("/") != 1:
        raise EngineUnavailable(f"The {what} folder '{source}' does not exist. Check {setting}.")
    if progress is not None:
        progress(0.0, f"Fetching {what}")
    try:
        folder = snapshot_download(
            source, allow_patterns=list(patterns), tqdm_class=_progress_bar(progress, f"Fetching {what}")
        )
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, httpx.HTTPError) as error:
        raise EngineUnavailable(
            f"The {what} ('{source}') are not on this computer and could not be downloaded (offline?). "
            f"Connect to the internet once so they can be fetched, or set {setting} to a folder that holds them."
        ) from error
    except HfHubHTTPError as error:
        raise EngineUnavailable(
            f"The {what} could not be downloaded from '{source}': {error}. Check {setting}."
        ) from error
    return Path(folder)


def _require(folder: Path, names: list[str], what: str, setting: str) -> None:
    missing = [name for name in names if not (folder / name).exists()]
    if missing:
        raise EngineUnavailable(
            f"The {what} in '{folder}' are incomplete: missing {', '.join(missing)}. "
            f"Download them again or check {setting}."
        )


def resolve_flashhead(source: str, variant: str, progress: Progress | None = None) -> tuple[Path, Path]:
    """(transformer folder, VAE folder or file) for `variant`, from a local folder or a hub id."""
    files = variant_files(variant)
    root = _fetch(source, files.patterns, "FlashHead weights", "AVATAR_FLASHHEAD_WEIGHTS", progress)
    _require(root, [f"{files.model_dir}/config.json", files.vae_path], "FlashHead weights", "AVATAR_FLASHHEAD_WEIGHTS")
    return root / files.model_dir, root / files.vae_path


def resolve_wav2vec2(source: str, progress: Progress | None = None) -> Path:
    """The wav2vec2-base-960h folder, from a local folder or a hub id."""
    folder = _fetch(source, WAV2VEC2_FILES, "wav2vec2 audio weights", "AVATAR_WAV2VEC2_WEIGHTS", progress)
    _require(folder, ["config.json"], "wav2vec2 audio weights", "AVATAR_WAV2VEC2_WEIGHTS")
    return folder


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of a diffusers folder: one safetensors file, a sharded index, or a legacy .bin."""
    single = folder / "diffusion_pytorch_model.safetensors"
    index = folder / "diffusion_pytorch_model.safetensors.index.json"
    legacy = folder / "diffusion_pytorch_model.bin"
    if single.exists():
        return load_file(single)
    if index.exists():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return {name: tensor for shard in shards for name, tensor in load_file(folder / shard).items()}
    if legacy.exists():
        return torch.load(legacy, map_location="cpu", weights_only=True)
    raise EngineUnavailable(f"No weights file (diffusion_pytorch_model.*) in '{folder}'. Download the weights again.")


def load_strict(cls: type[ModuleT], folder: Path) -> ModuleT:
    """Build `cls` from folder/config.json and load every tensor, refusing missing or unexpected names."""
    model = cls.from_config(cls.load_config(folder))
    state = read_state_dict(folder)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(name for name in set(state) & set(expected) if state[name].shape != expected[name].shape)
    if missing or unexpected or wrong:
        raise EngineUnavailable(
            f"The weights in '{folder}' do not fit {cls.__name__}: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}, wrong shapes {wrong[:3]}. Download them again."
        )
    model.load_state_dict(state, strict=True)
    return model
