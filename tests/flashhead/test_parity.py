"""The reimplementation computes what the published FlashHead code computes (fixtures made with it)."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

from avatar.engines.flashhead.audio_features import AudioFeatures, frame_windows
from avatar.engines.flashhead.transformer import WanModelAudioProject


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual.double() - expected.double()).norm() / expected.double().norm())


def test_transformer_output_matches_published_code(fixtures_dir, seeded):
    meta = json.loads((fixtures_dir / "dit_forward.json").read_text())
    data = load_file(fixtures_dir / "dit_forward.safetensors")
    model = WanModelAudioProject(**meta["config"]).eval()
    model.load_state_dict(seeded(model, meta["weights_seed"]), strict=True)
    with torch.no_grad():
        out = model(data["x"], data["timestep"], data["context"], data["y"])
    assert out.shape == data["out"].shape
    assert relative_error(out, data["out"]) < 1e-4


def test_transformer_gives_each_sample_of_a_batch_its_own_result(fixtures_dir, seeded):
    meta = json.loads((fixtures_dir / "dit_forward.json").read_text())
    data = load_file(fixtures_dir / "dit_forward.safetensors")
    model = WanModelAudioProject(**meta["config"]).eval()
    model.load_state_dict(seeded(model, meta["weights_seed"]), strict=True)
    second = {key: torch.randn_like(data[key]) for key in ("x", "y", "context")}
    with torch.no_grad():
        alone = model(second["x"], torch.tensor([500.0]), second["context"], second["y"])
        both = model(
            torch.cat([data["x"], second["x"]]),
            torch.tensor([750.0, 500.0]),
            torch.cat([data["context"], second["context"]]),
            torch.cat([data["y"], second["y"]]),
        )
    assert relative_error(both[:1], data["out"]) < 1e-4
    assert relative_error(both[1:], alone) < 1e-4


def test_fused_qkv_gives_the_same_output(fixtures_dir, seeded):
    meta = json.loads((fixtures_dir / "dit_forward.json").read_text())
    data = load_file(fixtures_dir / "dit_forward.safetensors")
    model = WanModelAudioProject(**meta["config"]).eval()
    model.load_state_dict(seeded(model, meta["weights_seed"]), strict=True)
    model.fuse_qkv()
    with torch.no_grad():
        out = model(data["x"], data["timestep"], data["context"], data["y"])
    assert relative_error(out, data["out"]) < 1e-4


def test_state_dict_names_and_shapes_match_the_published_checkpoints(fixtures_dir):
    full = {
        "dim": 1536,
        "ffn_dim": 8960,
        "text_dim": 4096,
        "freq_dim": 256,
        "eps": 1e-6,
        "num_heads": 12,
        "num_layers": 30,
    }
    variants = {
        "lite": {"in_dim": 256, "out_dim": 128, "patch_size": (1, 1, 1), "vae_stride": (8, 32, 32)},
        "pro": {"in_dim": 32, "out_dim": 16, "patch_size": (1, 2, 2), "vae_stride": (4, 8, 8)},
    }
    for variant, sizes in variants.items():
        with torch.device("meta"):
            model = WanModelAudioProject(**full, **sizes)
        published = {}
        for line in (fixtures_dir / f"state_dict_{variant}.txt").read_text().splitlines():
            if line and not line.startswith("#"):
                name, shape = line.split(" ", 1)
                published[name] = json.loads(shape)
        ours = {name: list(tensor.shape) for name, tensor in model.state_dict().items()}
        assert ours == published, variant


def test_audio_features_match_published_code(fixtures_dir, seeded):
    meta = json.loads((fixtures_dir / "audio_features.json").read_text())
    data = load_file(fixtures_dir / "audio_features.safetensors")
    model = Wav2Vec2Model(Wav2Vec2Config()).eval()
    model.load_state_dict(seeded(model, meta["weights_seed"]), strict=True)
    features = AudioFeatures(model, Wav2Vec2FeatureExtractor())
    waveform = data["waveform_16k"].numpy()
    assert relative_error(features.normalise(waveform)[0], data["normalized_input"]) < 1e-4
    out = features.encode(waveform)
    assert out.shape == (1, meta["n_frames"], 12, 768)
    assert relative_error(out[0], data["features"]) < 1e-4


def test_audio_windows_are_centred_and_clamped_at_the_ends():
    features = torch.arange(10.0).view(1, 10, 1, 1)
    windows = frame_windows(features, 7, 10)[0, :, :, 0, 0]
    assert windows.tolist() == [[5, 6, 7, 8, 9], [6, 7, 8, 9, 9], [7, 8, 9, 9, 9]]
    assert frame_windows(features, 0, 2)[0, 0, :, 0, 0].tolist() == [0, 0, 0, 1, 1]
