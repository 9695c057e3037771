"""Framing benchmark: what putting the animated face back into the photo costs, and the room a close-up needs.

One command:  python bench/framing.py
Prints three tables and rewrites the "## Framing" section of bench/RESULTS.md (that section only).

1. Speed, on the default engine, for the close-up (512 square) and the whole photo at 512, 768 and
   1024 long side, on three photos made larger than 1024 from the samples (a portrait, a tight head
   shot, a wide 16:9 photo with the face at its left edge): each part of a run timed alone (the
   engine drawing, the compositing, the app's H.264 encoder), an estimate of the run on two idle
   cores from their CPU time, and a whole run (all three at once) as this shared machine gave it.
2. The encoder's share at faster x264 presets, for whoever weighs the video's size against speed.
3. Close-up margin: the default engine's open mouth ("a") with the square moved up until the room
   under the chin is a given share of the face's height: how far the chin drops (MediaPipe on the
   drawn frame) and how hard the open jaw squeezes the neck under it. This sets
   alignment.CLOSE_UP_MARGIN.

Predictions were written into PREDICTED before the first measurement and are shown beside it.
"""

from __future__ import annotations

import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avatar.alignment import CLOSE_UP_MARGIN, Square, aligned_crop, face_square, to_crop_coordinates  # noqa: E402
from avatar.config import ENGINE_SAMPLE_RATE, FPS, SAMPLE_FACES_DIR, Settings  # noqa: E402
from avatar.engines.base import FaceCrop, SpeechChunker  # noqa: E402
from avatar.engines.default.engine import DefaultEngine  # noqa: E402
from avatar.engines.default.idle_motion import IdleTrack  # noqa: E402
from avatar.engines.default.mouth_shapes import VISEMES, MouthTrack  # noqa: E402
from avatar.face_mesh import find_faces  # noqa: E402
from avatar.faces import Face, read_face  # noqa: E402
from avatar.framing import Framing  # noqa: E402
from avatar.images import load_photo  # noqa: E402
from avatar.media import ffmpeg_exe, video_args  # noqa: E402
from avatar.paste_back import Compositor, compositor  # noqa: E402
from avatar.speech.utterance import Utterance  # noqa: E402
from bench.results import write_section  # noqa: E402

SECTION = "Framing"
SPEECH_SECONDS = 4.0
ROUNDS = 3
# x264 presets compared for the encoder's share (the app uses veryfast, avatar/media.py).
PRESETS = ("veryfast", "superfast", "ultrafast")
SETTINGS = (("close-up", 512), ("whole", 512), ("whole", 768), ("whole", 1024))
# Written before measuring: (compositing ms per frame for the portrait, whole-run frames/s for the portrait).
PREDICTED = {
    ("close-up", 512): (0.0, 85.0),
    ("whole", 512): (2.0, 75.0),
    ("whole", 768): (4.0, 60.0),
    ("whole", 1024): (7.0, 45.0),
}
# Room under the chin, as a share of the face's height (the engine's own square leaves about 0.45).
MARGINS = (None, 0.3, 0.25, 0.2, 0.15, 0.1)
CHIN = 152


def face_crop(face: Face) -> FaceCrop:
    """What the engine sees of a face (as avatar/engines/animate.py hands it over)."""
    return FaceCrop(face.crop, face.landmarks, float(np.hypot(*face.crop_to_photo[:, 0])))


def sample(name: str) -> np.ndarray:
    return load_photo(SAMPLE_FACES_DIR / name, 40_000_000, 25_000_000)


def enlarged(picture: np.ndarray, long_side: int) -> np.ndarray:
    scale = long_side / max(picture.shape[:2])
    size = (round(picture.shape[1] * scale), round(picture.shape[0] * scale))
    return np.asarray(Image.fromarray(picture).resize(size, Image.Resampling.LANCZOS))


def photos() -> dict[str, np.ndarray]:
    """Three photos larger than the largest long side measured, so that each setting shrinks them."""
    grace = sample("grace_hopper.jpg")
    astronaut = sample("astronaut.png")
    band = astronaut[40:328, 150:]
    stretch = cv2.resize(astronaut[40:328, 400:], (512 - band.shape[1], band.shape[0]))
    wide = np.concatenate([band, stretch], axis=1)
    return {
        "portrait 1280x1500": enlarged(grace, 1500),
        "tight head shot 740x1120": enlarged(np.ascontiguousarray(grace[40:380, 150:376]), 1120),
        "wide 16:9, face at the left 1920x1080": enlarged(np.ascontiguousarray(wide), 1920),
    }


def speech(seconds: float) -> Utterance:
    """A voiced buzz with syllable-like loudness: the engine's cost does not depend on the words."""
    t = np.arange(int(seconds * ENGINE_SAMPLE_RATE)) / ENGINE_SAMPLE_RATE
    audio = 0.4 * np.clip(np.sin(2 * np.pi * 3.0 * t), 0.0, None) * np.sign(np.sin(2 * np.pi * 140 * t))
    return Utterance("bench", audio.astype(np.float32), ENGINE_SAMPLE_RATE)


def encoder(size: tuple[int, int], preset: str = "veryfast") -> subprocess.Popen:
    """The app's H.264 setting, as the live stream encodes (its audio left out), writing nowhere."""
    width, height = size
    args = video_args(FPS)
    args[args.index("-preset") + 1] = preset
    return subprocess.Popen(
        [
            ffmpeg_exe(), "-v", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(FPS), "-i", "pipe:0",
            *args, "-profile:v", "high", "-f", "null", "-",
        ],
        stdin=subprocess.PIPE,
    )  # fmt: skip


def _cpu() -> float:
    """This process's CPU seconds, to the microsecond (os.times counts in 10 ms ticks)."""
    return time.process_time()


def _children_cpu() -> float:
    """CPU seconds of the waited-for child processes (the encoder), to the microsecond."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def draw_alone(engine: DefaultEngine, face: Face, utterance: Utterance) -> tuple[np.ndarray, float]:
    """The engine's frames for `utterance`, drawn alone on one torch thread: (frames, CPU ms per frame).

    One thread, because on a busy machine torch's second thread spins while it waits for the first
    and bills that as CPU time (four times the work, measured); one thread's CPU time is the work.
    """
    state = engine.open(face_crop(face))
    chunker = SpeechChunker(engine.chunk_frames)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cpu = _cpu()
        frames = np.concatenate(
            [frames for chunk in chunker.push(utterance) + chunker.finish() for frames in engine.draw_one(state, chunk)]
        )
        return frames, 1000 * (_cpu() - cpu) / len(frames)
    finally:
        torch.set_num_threads(threads)


def compose_alone(composer: Compositor, frames: np.ndarray, batches: int = 20) -> tuple[float, float]:
    """(wall ms, CPU ms) per frame of compositing a batch of 8 engine frames: the best of `batches` tries."""
    best = (math.inf, math.inf)
    for _ in range(batches):
        start, cpu = time.perf_counter(), _cpu()
        composer.compose(frames[:8])
        best = min(best, ((time.perf_counter() - start) / 8, (_cpu() - cpu) / 8))
    return 1000 * best[0], 1000 * best[1]


def encode_alone(video: np.ndarray, preset: str = "veryfast") -> float:
    """CPU ms per frame ffmpeg spends encoding `video` (n, height, width, 3) with the app's H.264 setting."""
    process = encoder((video.shape[2], video.shape[1]), preset)
    assert process.stdin is not None
    cpu = _children_cpu()
    process.stdin.write(video.tobytes())
    process.stdin.close()
    process.wait()
    return 1000 * (_children_cpu() - cpu) / len(video)


def run_once(engine: DefaultEngine, face: Face, max_side: int, utterance: Utterance) -> float:
    """Frames/s of one run drawn, composed and encoded at once, as a run does: first frame drawn to last encoded."""
    state = engine.open(face_crop(face))
    chunker = SpeechChunker(engine.chunk_frames)
    composer = compositor(face, face.size, max_side)
    process = encoder(composer.size)
    assert process.stdin is not None
    count = 0
    start = time.perf_counter()
    for chunk in chunker.push(utterance) + chunker.finish():
        for frames in engine.draw_one(state, chunk):
            process.stdin.write(composer.compose(frames).tobytes())
            count += len(frames)
    process.stdin.close()
    process.wait()
    return count / (time.perf_counter() - start)


def speed() -> list[dict]:
    """Each part alone (the best of ROUNDS tries, which a busy spell on the machine spoils least), then a whole run."""
    engine = DefaultEngine("cpu")
    utterance = speech(SPEECH_SECONDS)
    rows = []
    for name, picture in photos().items():
        for framing in Framing:
            face = read_face(picture, framing=framing)
            engine.prepare(face_crop(face))
            draw_alone(engine, face, speech(1.0))
            tries = [draw_alone(engine, face, utterance) for _ in range(ROUNDS)]
            frames, draw_cpu = tries[0][0], min(cpu for _, cpu in tries)
            for setting, side in SETTINGS:
                if setting != framing.value:
                    continue
                composer = compositor(face, face.size, side)
                video = composer.compose(frames)
                compose_ms, compose_cpu = compose_alone(composer, frames)
                encode_cpu = min(encode_alone(video) for _ in range(ROUNDS))
                run_fps = max(run_once(engine, face, side, utterance) for _ in range(ROUNDS))
                rows.append(
                    {
                        "photo": name,
                        "framing": framing.value,
                        "side": side,
                        "size": composer.size,
                        "draw_cpu": draw_cpu,
                        "compose": (compose_ms, compose_cpu),
                        "encode_cpu": encode_cpu,
                        "estimate_fps": 2000 / (draw_cpu + compose_cpu + encode_cpu),
                        "run_fps": run_fps,
                        "presets": {preset: encode_alone(video, preset) for preset in PRESETS},
                    }
                )
                print(rows[-1], flush=True)
    return rows


def open_mouth(engine: DefaultEngine, pixels: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The default engine's 'a' (open mouth), head still and eyes open, drawn over `pixels` with this mesh."""
    renderer = engine.open(FaceCrop(pixels, landmarks)).renderer
    opening, spread, tuck = VISEMES["a"]
    track = MouthTrack(*(np.array([value], np.float32) for value in (opening, spread, tuck, 1.0)))
    still = np.zeros(1, np.float32)
    motion = renderer.weights(0, track, IdleTrack(blink=still, brow=still, roll=still, shift_x=still, shift_y=still))
    return renderer.render(np.zeros(1, int), motion)[0].numpy()


def squeeze_under_chin(engine: DefaultEngine, landmarks: np.ndarray, size: int = 512) -> float:
    """How many rows of the photo the open jaw packs into one row of the frame under the chin, at most.

    The engine draws a picture whose every row holds its own row number (red: row // 2, green: its
    last bit), so each drawn pixel says which row it was taken from.
    """
    rows = np.arange(size)[:, None]
    ramp = np.zeros((size, size, 3), np.uint8)
    ramp[..., 0], ramp[..., 1] = rows // 2, rows % 2 * 128
    drawn = open_mouth(engine, ramp, landmarks).astype(np.float32)
    source = drawn[..., 0] * 2 + drawn[..., 1] / 128
    x, y = np.rint(landmarks[CHIN]).astype(int)
    column = source[y:, x - 20 : x + 21].mean(axis=1)
    step = 4
    return float(((column[step:] - column[:-step]) / step).max()) if len(column) > 2 * step else float("nan")


def chin_drop(engine: DefaultEngine, crop: np.ndarray, landmarks: np.ndarray) -> float:
    """How far the chin drops for the open mouth (crop pixels), as MediaPipe sees the drawn frame."""
    rest, spoken = find_faces(crop)[0], find_faces(open_mouth(engine, crop, landmarks))[0]
    return float(spoken.landmarks[CHIN, 1] - rest.landmarks[CHIN, 1])


def margins() -> list[dict]:
    """The open jaw with less and less room under the chin (the square moved up, its side kept)."""
    engine = DefaultEngine("cpu")
    rows = []
    for name in ("astronaut.png", "grace_hopper.jpg"):
        picture = enlarged(sample(name), 1200)
        detected = find_faces(picture)[0]
        preferred = face_square(detected.landmarks)
        cos, sin = math.cos(preferred.angle), math.sin(preferred.angle)
        rotation = np.array([[cos, -sin], [sin, cos]])
        along = (detected.landmarks - preferred.centre) @ rotation
        face_height = float(along[:, 1].max() - along[:, 1].min())
        room = preferred.side / 2 - float(along[:, 1].max())
        reference = None
        for margin in MARGINS:
            lift = 0.0 if margin is None else room - margin * face_height
            square = Square(preferred.centre - rotation @ np.array([0.0, lift]), preferred.side, preferred.angle)
            crop = aligned_crop(picture, square, 512)
            landmarks = to_crop_coordinates(detected.landmarks, crop.crop_to_photo)
            drop, squeeze = chin_drop(engine, crop.image, landmarks), squeeze_under_chin(engine, landmarks)
            reference = reference or (drop, squeeze)
            rows.append(
                {
                    "photo": name,
                    "margin": room / face_height if margin is None else margin,
                    "drop": drop / reference[0],
                    "squeeze": squeeze,
                    "squeeze_ratio": squeeze / reference[1],
                }
            )
            print(rows[-1], flush=True)
    return rows


def speed_table(rows: list[dict]) -> str:
    lines = [
        "| photo | framing | video size | engine CPU ms/frame | compositing ms/frame (CPU ms) "
        "[predicted] | encoder CPU ms/frame | estimate on 2 idle cores, frames/s | whole run, best of "
        f"{ROUNDS}, frames/s [predicted] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        compose_predicted, run_predicted = PREDICTED[(row["framing"], row["side"])]
        label = "close-up" if row["framing"] == "close-up" else f"whole, long side {row['side']}"
        width, height = row["size"]
        compose_ms, compose_cpu = row["compose"]
        lines.append(
            f"| {row['photo']} | {label} | {width}x{height} | {row['draw_cpu']:.1f} "
            f"| {compose_ms:.2f} ({compose_cpu:.2f}) [{compose_predicted:.1f}] | {row['encode_cpu']:.1f} "
            f"| {row['estimate_fps']:.0f} ({row['estimate_fps'] / FPS:.1f}x) "
            f"| {row['run_fps']:.0f} ({row['run_fps'] / FPS:.1f}x) [{run_predicted:.0f}] |"
        )
    return "\n".join(lines)


def preset_table(rows: list[dict]) -> str:
    lines = [
        "| photo | framing | video size | "
        + " | ".join(f"encoder CPU ms/frame, {preset}" for preset in PRESETS)
        + " |",
        "|---|---|---|" + "---|" * len(PRESETS),
    ]
    for row in rows:
        label = "close-up" if row["framing"] == "close-up" else f"whole, long side {row['side']}"
        width, height = row["size"]
        costs = " | ".join(f"{row['presets'][preset]:.1f}" for preset in PRESETS)
        lines.append(f"| {row['photo']} | {label} | {width}x{height} | {costs} |")
    return "\n".join(lines)


def largest_side(rows: list[dict]) -> int | None:
    """The largest long side at which every photo's whole-photo run is estimated at 3x real time or faster."""
    fitting = [
        side
        for _, side in SETTINGS[1:]
        if all(row["estimate_fps"] >= 3 * FPS for row in rows if row["framing"] == "whole" and row["side"] == side)
    ]
    return max(fitting, default=None)


def margin_table(rows: list[dict]) -> str:
    lines = [
        "| photo | room under the chin (share of face height) | chin drop, of the engine's own square "
        "| squeeze under the chin (of the engine's own square) |",
        "|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['photo']} | {row['margin']:.2f} | {row['drop']:.0%} "
            f"| {row['squeeze']:.2f} ({row['squeeze_ratio']:.2f}x) |"
        )
    return "\n".join(lines)


def main() -> None:
    load_before = os.getloadavg()[0]
    speed_rows = speed()
    margin_rows = margins()
    load_after = os.getloadavg()[0]
    fitting = largest_side(speed_rows)
    body = "\n\n".join(
        [
            "`python bench/framing.py` (CPU, default engine; issue #24).",
            speed_table(speed_rows),
            f"CPU: {platform.machine()}, {os.cpu_count()} cores shared with other work, {torch.get_num_threads()} "
            f"torch threads, {cv2.getNumThreads()} OpenCV threads, torch {torch.__version__}, OpenCV "
            f"{cv2.__version__}; load average (1 min) before / after: {load_before:.1f} / {load_after:.1f}. "
            f"{SPEECH_SECONDS:.0f} s of speech ({int(SPEECH_SECONDS * FPS)} frames) per run. Each part's CPU time "
            f"is measured alone, the least of {ROUNDS} tries (20 batches of 8 frames for the compositing): the "
            "engine drawing on one torch thread (on a busy machine a second thread spins while it waits and bills "
            "four times the work), the compositing (PasteBack.compose, its wall time beside), and the app's H.264 "
            "setting (libx264 veryfast, zerolatency, CRF 20, in its own ffmpeg process). The estimate is 2000 ms "
            "over their sum: what two idle cores give when the three share them perfectly, as a run's threads "
            "try to; it is a ceiling (the engine's two torch threads share less than perfectly: compare its 112 "
            "frames/s on an idle machine in 'Default engine' with 2000 ms over its CPU ms here). The whole run "
            "draws (two torch threads), composes and encodes at once, first frame drawn to last encoded, the best of "
            f"{ROUNDS}: what this busy machine gave. Predicted numbers [in brackets] were written before the "
            "first measurement, for the portrait. "
            + (
                f"By the estimates, the largest long side at which every photo stays at 3x real time or faster "
                f"is {fitting}"
                if fitting
                else "By the estimates, no long side keeps every photo at 3x real time"
            )
            + f"; the setting's default is AVATAR_MAX_VIDEO_SIDE={Settings().max_video_side}.",
            preset_table(speed_rows),
            "The encoder's share at the x264 presets (the app uses veryfast, avatar/media.py): the same frames, "
            "encoded alone, CPU ms per frame.",
            margin_table(margin_rows),
            "The engine's open mouth ('a', head still) with the square moved up until the room under the chin "
            "is the share of the face's height shown; the first row per photo is the engine's own square. "
            "Chin drop: MediaPipe's chin (landmark 152) on the drawn frame against the crop at rest. Squeeze: the "
            "most rows of the crop the open jaw packs into one row of the frame below the chin (1: none), read "
            "off a frame the engine draws over a picture whose pixels hold their own row numbers. "
            f"alignment.CLOSE_UP_MARGIN ({CLOSE_UP_MARGIN}) is the least room at which the open jaw squeezes the "
            "neck at most a quarter more than in the engine's own square; the chin's drop, as MediaPipe sees it, "
            "scatters a few percent below the engine's own square's at every room and does not decide. The mouth "
            "itself looks the same with the square shrunk to 0.65 of its side (looked at on both samples).",
        ]
    )
    print(body)
    write_section(SECTION, body)


if __name__ == "__main__":
    main()
