"""The embedded default engine: animates the photo itself, on any machine, with no downloaded weights."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from avatar.config import ENGINE_SAMPLE_RATE, SAMPLES_PER_FRAME
from avatar.engines.base import Engine, EngineInfo, EngineSession
from avatar.engines.default.idle_motion import IdleMotion
from avatar.engines.default.mouth_interior import MouthColours, paint_mouth
from avatar.engines.default.mouth_shapes import MouthTrack, mouth_track
from avatar.engines.default.warp import ACTIONS, FaceRig, warp_frames
from avatar.faces import Face
from avatar.speech.utterance import Phone, Utterance

# How far the parts move at full strength, relative to the mouth width or the crop size.
MAX_OPENING = 0.34
SPREAD = 0.12
TUCK_PIXELS = 0.006
BROW_LIFT = 0.012
FRAMES_PER_BATCH = 10


def resolve_device(name: str) -> torch.device:
    """"auto" means the GPU when there is one."""
    if name in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class DefaultEngine(Engine):
    """Warps the rest photo along the face mesh, frame by frame, from the speech."""

    def __init__(self, device: str = "auto") -> None:
        self.device = resolve_device(device)
        self.info = EngineInfo(key="default", label="Embedded photo animator", device=self.device.type.upper())

    def start(self, face: Face) -> DefaultSession:
        return DefaultSession(face, self.device)


class DefaultSession(EngineSession):
    def __init__(self, face: Face, device: torch.device) -> None:
        self.device = device
        self.size = face.size
        self.rig = FaceRig.build(face.landmarks, face.size, device)
        self.colours = MouthColours.sample(face.crop, face.landmarks, device)
        self.image = torch.from_numpy(face.crop).to(device).permute(2, 0, 1).float()[None]
        self.idle = IdleMotion(seed=0)
        self.pending = np.zeros(0, np.float32)

    def push(self, utterance: Utterance) -> Iterator[np.ndarray]:
        if utterance.sample_rate != ENGINE_SAMPLE_RATE:
            raise ValueError(f"engines take {ENGINE_SAMPLE_RATE} Hz speech, got {utterance.sample_rate} Hz")
        lead = len(self.pending) / ENGINE_SAMPLE_RATE
        audio = np.concatenate([self.pending, utterance.audio.astype(np.float32)])
        phones = tuple(Phone(p.symbol, p.start + lead, p.end + lead) for p in utterance.phones)
        count = len(audio) // SAMPLES_PER_FRAME
        self.pending = audio[count * SAMPLES_PER_FRAME :]
        yield from self._render(mouth_track(audio, ENGINE_SAMPLE_RATE, phones, count))

    def finish(self) -> Iterator[np.ndarray]:
        if len(self.pending):
            audio, self.pending = self.pending, np.zeros(0, np.float32)
            yield from self._render(mouth_track(audio, ENGINE_SAMPLE_RATE, (), 1))

    def _weights(self, track: MouthTrack, blink: np.ndarray, brow: np.ndarray) -> np.ndarray:
        geometry = self.rig.geometry
        weights = np.zeros((len(track), len(ACTIONS)), np.float32)
        column = {name: index for index, name in enumerate(ACTIONS)}
        gap = track.open * MAX_OPENING * geometry.mouth_width
        weights[:, column["jaw"]] = gap - geometry.rest_gap
        weights[:, column["spread"]] = np.clip(track.spread, 0, None) * SPREAD * geometry.mouth_width
        weights[:, column["round"]] = np.clip(-track.spread, 0, None) * SPREAD * geometry.mouth_width
        weights[:, column["tuck"]] = track.tuck * TUCK_PIXELS * self.size
        weights[:, column["blink_left"]] = blink
        weights[:, column["blink_right"]] = blink
        weights[:, column["brow"]] = brow * BROW_LIFT * self.size
        return weights

    @torch.inference_mode()
    def _render(self, track: MouthTrack) -> Iterator[np.ndarray]:
        idle = self.idle.next(track.loudness)
        weights = torch.from_numpy(self._weights(track, idle.blink, idle.brow)).to(self.device)
        scale = self.size / 512
        roll = torch.from_numpy(idle.roll).to(self.device)
        shift = torch.from_numpy(np.stack([idle.shift_x, idle.shift_y], 1) * scale).to(self.device)
        for start in range(0, len(track), FRAMES_PER_BATCH):
            part = slice(start, start + FRAMES_PER_BATCH)
            frames, moved = warp_frames(self.image[0], self.rig, weights[part], roll[part], shift[part])
            frames = paint_mouth(frames, moved, self.colours, self.rig.geometry.mouth_width)
            yield frames.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
