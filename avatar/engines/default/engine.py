"""The embedded default engine: animates the photo itself, on any machine, with no downloaded weights."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import torch

from avatar.config import ENGINE_SAMPLE_RATE, SAMPLES_PER_FRAME
from avatar.engines.base import Engine, EngineInfo, EngineSession
from avatar.engines.default import mesh
from avatar.engines.default.idle_motion import IdleMotion, IdleTrack
from avatar.engines.default.mouth_interior import MouthAtRest, MouthColours, lip_edges, paint_mouth
from avatar.engines.default.mouth_shapes import QUIET_DBFS, MouthTrack, frame_levels, mouth_track
from avatar.engines.default.paste_back import PasteBack
from avatar.engines.default.warp import ACTIONS, FIELD_STEP, FaceRig, RigBatch, moved_landmarks, warp_window
from avatar.faces import Face
from avatar.speech.utterance import Phone, Utterance

# How far the parts move at full strength, relative to the mouth width or the crop size.
MAX_OPENING = 0.36
SPREAD = 0.12
TUCK_PIXELS = 0.006
BROW_LIFT = 0.012
# Frames warped in one forward per session: enough to keep the CPU's cores busy.
FRAMES_PER_BATCH = 8
# Prepared faces kept for reuse (a renderer is read-only, so sessions may share one).
PREPARED_FACES = 8
# "crop": the 512x512 aligned face; "photo": the whole original photo with the face pasted back.
OUTPUTS = ("crop", "photo")


def resolve_device(name: str) -> torch.device:
    """ "auto" means the GPU when there is one."""
    if name in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _unpack(frames: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(frames.cpu().numpy())


class DefaultEngine(Engine):
    """Warps the rest photo along the face mesh, frame by frame, from the speech."""

    def __init__(self, device: str = "auto", output: str = "crop") -> None:
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        self.device = resolve_device(device)
        self.uses_gpu = self.device.type == "cuda"
        self.output = output
        self.info = EngineInfo(key="default", label="Embedded photo animator", device=self.device.type.upper())
        self._prepared: OrderedDict[str, Future[FaceRenderer]] = OrderedDict()
        self._lock = threading.Lock()

    def _renderer(self, face: Face) -> FaceRenderer:
        """The face's prepared renderer: built once (about half a second on a CPU), then reused.

        A run that starts while the same face is still being prepared (the page prepares it when the
        photo is picked) waits for that build rather than doing it a second time.
        """
        key = hashlib.sha1(face.crop.tobytes() + face.landmarks.tobytes()).hexdigest()
        with self._lock:
            building = key not in self._prepared
            if building:
                self._prepared[key] = Future()
            self._prepared.move_to_end(key)
            entry = self._prepared[key]
            while len(self._prepared) > PREPARED_FACES:
                self._prepared.popitem(last=False)
        if building:
            try:
                entry.set_result(FaceRenderer([face], self.device, self.output))
            except BaseException as error:
                entry.set_exception(error)
                with self._lock:
                    if self._prepared.get(key) is entry:
                        del self._prepared[key]
        return entry.result()

    def prepare(self, face: Face) -> None:
        self._renderer(face)

    def start(self, face: Face) -> DefaultSession:
        return DefaultSession(self._renderer(face), index=0)

    def start_many(self, faces: list[Face]) -> SessionBatch:
        """Several faces speaking at once, rendered together in one forward per step (for a GPU)."""
        return SessionBatch(FaceRenderer(faces, self.device, self.output))


@dataclass(frozen=True)
class Motion:
    """Per-frame action weights and head motion for one stretch of frames of one face."""

    weights: np.ndarray
    roll: np.ndarray
    shift: np.ndarray


class FaceRenderer:
    """Everything prepared once for one or more faces; turns motion into frames in batches."""

    def __init__(self, faces: list[Face], device: torch.device, output: str) -> None:
        self.device = device
        self.output = output
        self.size = faces[0].size
        if any(face.size != self.size for face in faces):
            raise ValueError("faces rendered together must share one crop size")
        self.rigs = [FaceRig.build(face.landmarks, self.size, device) for face in faces]
        self.batch = RigBatch.stack(self.rigs)
        self.box = self.batch.window.pixels(FIELD_STEP, self.size)
        self.colours = [
            MouthColours.sample(face.crop, face.landmarks, float(np.hypot(*face.crop_to_photo[:, 0])), device)
            for face in faces
        ]
        self.lip_edges = torch.from_numpy(np.stack([lip_edges(face.crop, face.landmarks) for face in faces])).to(device)
        crops = torch.from_numpy(np.stack([face.crop for face in faces])).to(device)
        self.rest = crops
        self.images = crops.permute(0, 3, 1, 2).float().contiguous(memory_format=torch.channels_last)
        self.paste = (
            [
                PasteBack.build(face.photo, face.crop_to_photo, rig.geometry, self.box, device)
                for face, rig in zip(faces, self.rigs, strict=True)
            ]
            if output == "photo"
            else []
        )

    def weights(self, index: int, track: MouthTrack, idle: IdleTrack) -> Motion:
        """Action weights (frames, actions) and head motion for face `index` from mouth and idle tracks."""
        geometry = self.rigs[index].geometry
        weights = np.zeros((len(track), len(ACTIONS)), np.float32)
        column = {name: i for i, name in enumerate(ACTIONS)}
        gap = track.open * MAX_OPENING * geometry.mouth_width
        weights[:, column["jaw"]] = gap - geometry.rest_gap
        weights[:, column["spread"]] = np.clip(track.spread, 0, None) * SPREAD * geometry.mouth_width
        weights[:, column["round"]] = np.clip(-track.spread, 0, None) * SPREAD * geometry.mouth_width
        weights[:, column["tuck"]] = track.tuck * TUCK_PIXELS * self.size
        weights[:, column["blink_left"]] = idle.blink
        weights[:, column["blink_right"]] = idle.blink
        weights[:, column["brow"]] = idle.brow * BROW_LIFT * self.size
        scale = self.size / 512
        shift = np.stack([idle.shift_x, idle.shift_y], 1).astype(np.float32) * scale
        return Motion(weights=weights, roll=idle.roll, shift=shift)

    def _mouth_at_rest(self, index: torch.Tensor, origin: torch.Tensor) -> MouthAtRest:
        landmarks = self.lip_edges[index] - origin
        return MouthAtRest(
            images=self.images[index] if len(self.rigs) > 1 else self.images.expand(len(index), -1, -1, -1),
            upper=landmarks[:, list(mesh.INNER_UPPER_LIP)],
            lower=landmarks[:, list(mesh.INNER_LOWER_LIP)],
            outer_upper=landmarks[:, list(mesh.OUTER_UPPER_OUTLINE)],
            outer_lower=landmarks[:, list(mesh.OUTER_LOWER_OUTLINE)],
            width=torch.tensor([rig.geometry.mouth_width for rig in self.rigs], device=self.device)[index],
            origin=origin,
        )

    @torch.inference_mode()
    def render(self, faces: np.ndarray, motion: Motion) -> torch.Tensor:
        """Frames (b, H, W, 3) uint8 for frame rows of `motion`, row i showing face faces[i]."""
        index = torch.from_numpy(faces).to(self.device)
        weights = torch.from_numpy(motion.weights).to(self.device)
        roll = torch.from_numpy(motion.roll).to(self.device)
        shift = torch.from_numpy(motion.shift).to(self.device)
        windows = warp_window(self.images, self.batch, index, weights, roll, shift)
        moved = torch.empty(len(faces), *self.rigs[0].landmarks.shape, device=self.device)
        for face in np.unique(faces):
            rows = torch.from_numpy(np.flatnonzero(faces == face)).to(self.device)
            moved[rows] = moved_landmarks(self.rigs[face], weights[rows], roll[rows], shift[rows])
        origin = torch.tensor([self.box[1].start, self.box[0].start], dtype=torch.float32, device=self.device)
        colours = MouthColours.stack([self.colours[face] for face in faces])
        windows = paint_mouth(windows, moved - origin, colours, self._mouth_at_rest(index, origin))
        if self.output == "photo":
            if len(self.paste) == 1:
                return self.paste[0].paste(windows)
            return torch.cat([self.paste[face].paste(windows[i : i + 1]) for i, face in enumerate(faces)])
        frames = self.rest[index] if len(self.rigs) > 1 else self.rest.expand(len(faces), -1, -1, -1).clone()
        frames[:, self.box[0], self.box[1]] = (windows + 0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        return frames


class SpeechClock:
    """Turns pushed sentences into whole frames of audio, carrying the leftover samples on.

    It also remembers the loudest frame so far, so that loudness means the same in every sentence.
    """

    def __init__(self) -> None:
        self.pending = np.zeros(0, np.float32)
        self.loudest = QUIET_DBFS

    def take(self, utterance: Utterance) -> MouthTrackInput:
        if utterance.sample_rate != ENGINE_SAMPLE_RATE:
            raise ValueError(f"engines take {ENGINE_SAMPLE_RATE} Hz speech, got {utterance.sample_rate} Hz")
        lead = len(self.pending) / ENGINE_SAMPLE_RATE
        audio = np.concatenate([self.pending, utterance.audio.astype(np.float32)])
        phones = tuple(Phone(p.symbol, p.start + lead, p.end + lead) for p in utterance.phones)
        count = len(audio) // SAMPLES_PER_FRAME
        self.pending = audio[count * SAMPLES_PER_FRAME :]
        if count:
            self.loudest = max(self.loudest, float(frame_levels(audio, ENGINE_SAMPLE_RATE, count).max()))
        return MouthTrackInput(audio, phones, count, self.loudest)

    def rest(self) -> MouthTrackInput:
        audio, self.pending = self.pending, np.zeros(0, np.float32)
        return MouthTrackInput(audio, (), 1 if len(audio) else 0, self.loudest)


@dataclass(frozen=True)
class MouthTrackInput:
    """Audio (with phones on its timeline) that makes exactly `frames` frames."""

    audio: np.ndarray
    phones: tuple[Phone, ...]
    frames: int
    loudest: float = QUIET_DBFS

    def track(self) -> MouthTrack:
        return mouth_track(self.audio, ENGINE_SAMPLE_RATE, self.phones, self.frames, self.loudest)


class DefaultSession(EngineSession):
    """One face speaking; frames are always warped from the rest photo, never from the last frame."""

    def __init__(self, renderer: FaceRenderer, index: int) -> None:
        self.renderer = renderer
        self.index = index
        self.idle = IdleMotion(seed=index)
        self.clock = SpeechClock()

    def push(self, utterance: Utterance) -> Iterator[np.ndarray]:
        yield from self._render(self.clock.take(utterance))

    def finish(self) -> Iterator[np.ndarray]:
        yield from self._render(self.clock.rest())

    def motion(self, piece: MouthTrackInput) -> Motion:
        """The next frames' motion: mouth from the speech, idle life carried on from the last call."""
        track = piece.track()
        return self.renderer.weights(self.index, track, self.idle.next(track.loudness))

    def _render(self, piece: MouthTrackInput) -> Iterator[np.ndarray]:
        if piece.frames == 0:
            return
        motion = self.motion(piece)
        faces = np.full(FRAMES_PER_BATCH, self.index)
        for start in range(0, piece.frames, FRAMES_PER_BATCH):
            part = slice(start, start + FRAMES_PER_BATCH)
            chunk = Motion(motion.weights[part], motion.roll[part], motion.shift[part])
            yield _unpack(self.renderer.render(faces[: len(chunk.weights)], chunk))


class SessionBatch:
    """Several faces, each with its own speech, rendered frame-step by frame-step in one forward."""

    def __init__(self, renderer: FaceRenderer) -> None:
        self.renderer = renderer
        self.sessions = [DefaultSession(renderer, index) for index in range(len(renderer.rigs))]

    def push(self, utterances: list[Utterance], frames_per_step: int = 1) -> Iterator[np.ndarray]:
        """Frames (faces, n, H, W, 3) for one sentence per face; shorter speech is padded with silence."""
        pieces = [session.clock.take(u) for session, u in zip(self.sessions, utterances, strict=True)]
        count = max(piece.frames for piece in pieces)
        pieces = [MouthTrackInput(p.audio, p.phones, count, p.loudest) for p in pieces]
        motions = [session.motion(piece) for session, piece in zip(self.sessions, pieces, strict=True)]
        for start in range(0, count, frames_per_step):
            part = slice(start, start + frames_per_step)
            steps = len(motions[0].weights[part])
            chunk = Motion(
                np.concatenate([m.weights[part] for m in motions]),
                np.concatenate([m.roll[part] for m in motions]),
                np.concatenate([m.shift[part] for m in motions]),
            )
            frames = self.renderer.render(np.repeat(np.arange(len(self.sessions)), steps), chunk)
            yield _unpack(frames.view(len(self.sessions), steps, *frames.shape[1:]))
