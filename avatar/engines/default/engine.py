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
from avatar.engines.base import Engine, FaceCrop, SpeechChunk
from avatar.engines.default import mesh
from avatar.engines.default.idle_motion import IdleMotion, IdleTrack
from avatar.engines.default.mouth_interior import MouthAtRest, MouthColours, lip_edges, paint_mouth
from avatar.engines.default.mouth_shapes import QUIET_DBFS, MouthTrack, frame_levels, mouth_track
from avatar.engines.default.warp import ACTIONS, FIELD_STEP, FaceRig, RigBatch, moved_landmarks, warp_window

# How far the parts move at full strength, relative to the mouth width or the crop size.
MAX_OPENING = 0.36
SPREAD = 0.12
TUCK_PIXELS = 0.006
BROW_LIFT = 0.012
# Frames warped in one forward per session: enough to keep the CPU's cores busy.
FRAMES_PER_BATCH = 8
# Prepared faces kept for reuse (a renderer is read-only, so sessions may share one).
PREPARED_FACES = 8


def _unpack(frames: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(frames.cpu().numpy())


class DefaultEngine(Engine):
    """Warps the rest photo along the face mesh, frame by frame, from the speech."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self._prepared: OrderedDict[str, Future[FaceRenderer]] = OrderedDict()
        self._lock = threading.Lock()

    def _renderer(self, face: FaceCrop) -> FaceRenderer:
        """The face's prepared renderer: built once (about half a second on a CPU), then reused.

        A run that starts while the same face is still being prepared (the page prepares it when the
        photo is picked) waits for that build rather than doing it a second time.
        """
        key = hashlib.sha1(face.pixels.tobytes() + face.landmarks.tobytes()).hexdigest()
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
                entry.set_result(FaceRenderer([face], self.device))
            except BaseException as error:
                entry.set_exception(error)
                with self._lock:
                    if self._prepared.get(key) is entry:
                        del self._prepared[key]
        return entry.result()

    def prepare(self, face: FaceCrop) -> None:
        self._renderer(face)

    def open(self, face: FaceCrop) -> AnimatorState:
        return AnimatorState(self._renderer(face))

    def draw_one(self, state: AnimatorState, chunk: SpeechChunk) -> Iterator[np.ndarray]:
        """The chunk's frames, FRAMES_PER_BATCH at a time, so the first ones show while the rest are warped."""
        if not chunk.frames:
            return
        motion = state.motion(chunk)
        faces = np.zeros(FRAMES_PER_BATCH, np.int64)
        for start in range(0, chunk.frames, FRAMES_PER_BATCH):
            part = slice(start, start + FRAMES_PER_BATCH)
            piece = Motion(motion.weights[part], motion.roll[part], motion.shift[part])
            yield _unpack(state.renderer.render(faces[: len(piece.weights)], piece))


@dataclass(frozen=True)
class Motion:
    """Per-frame action weights and head motion for one stretch of frames of one face."""

    weights: np.ndarray
    roll: np.ndarray
    shift: np.ndarray


class FaceRenderer:
    """Everything prepared once for one or more faces; turns motion into frames in batches."""

    def __init__(self, faces: list[FaceCrop], device: torch.device) -> None:
        self.device = device
        self.size = faces[0].size
        if any(face.size != self.size for face in faces):
            raise ValueError("faces rendered together must share one crop size")
        self.rigs = [FaceRig.build(face.landmarks, self.size, device) for face in faces]
        self.batch = RigBatch.stack(self.rigs)
        self.box = self.batch.window.pixels(FIELD_STEP, self.size)
        self.colours = [MouthColours.sample(face.pixels, face.landmarks, face.photo_scale, device) for face in faces]
        edges = np.stack([lip_edges(face.pixels, face.landmarks) for face in faces])
        self.lip_edges = torch.from_numpy(edges).to(device)
        crops = torch.from_numpy(np.stack([face.pixels for face in faces])).to(device)
        self.rest = crops
        self.images = crops.permute(0, 3, 1, 2).float().contiguous(memory_format=torch.channels_last)

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
        frames = self.rest[index] if len(self.rigs) > 1 else self.rest.expand(len(faces), -1, -1, -1).clone()
        frames[:, self.box[0], self.box[1]] = (windows + 0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        return frames


class AnimatorState:
    """One face speaking; frames are always warped from the rest photo, never from the last frame.

    Idle life (blinks, head motion) carries on from chunk to chunk, and so does the loudest frame so
    far, so that loudness means the same in every sentence.
    """

    def __init__(self, renderer: FaceRenderer) -> None:
        self.renderer = renderer
        self.idle = IdleMotion(seed=0)
        self.loudest = QUIET_DBFS

    def track(self, chunk: SpeechChunk) -> MouthTrack:
        """The mouth over the chunk's frames, from its speech and phones, loudness relative to the run so far."""
        spoken = chunk.audio[: chunk.frames * SAMPLES_PER_FRAME]
        self.loudest = max(self.loudest, float(frame_levels(spoken, ENGINE_SAMPLE_RATE, chunk.frames).max()))
        return mouth_track(spoken, ENGINE_SAMPLE_RATE, chunk.phones, chunk.frames, self.loudest)

    def motion(self, chunk: SpeechChunk) -> Motion:
        """The chunk's motion: mouth from its speech, idle life carried on from the last chunk."""
        track = self.track(chunk)
        return self.renderer.weights(0, track, self.idle.next(track.loudness))
