"""Default engine benchmark: speed, lip sync, stability and identity drift, measured, not asserted.

One command:  python bench/default_engine.py
Prints a table, writes bench/out/default_engine.json and rewrites the "## Default engine"
section of bench/RESULTS.md (read-modify-write of that section only). On a machine with a GPU
but without MediaPipe, `--gpu-only` measures batched speed from faces cached by a CPU run.

Lip sync is judged by an independent MediaPipe landmark pass over the decoded MP4: the mouth
opening (inner-lip gap over mouth width) per frame against the speech's loudness per 40 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avatar.config import ENGINE_SAMPLE_RATE, FPS, SAMPLES_PER_FRAME  # noqa: E402
from avatar.engines.animate import face_crop  # noqa: E402
from avatar.engines.base import SpeechChunk  # noqa: E402
from avatar.engines.default.engine import DefaultEngine  # noqa: E402
from avatar.engines.loaded import TalkingFace  # noqa: E402
from avatar.engines.placement import Unbatched  # noqa: E402
from avatar.faces import DetectedFace, Face  # noqa: E402
from avatar.speech.utterance import Utterance  # noqa: E402
from bench.results import write_section  # noqa: E402

SECTION = "Default engine"
SENTENCES = (
    "Hello there, I am glad you came to see me today.",
    "Would you like to fly to the moon with me?",
    "Every morning we check the oxygen, the food and the water.",
    "Programming a computer is a bit like teaching a very patient friend.",
    "Thank you very much, and see you soon!",
)
PHOTOS = ("astronaut.png", "grace_hopper.jpg")
FACE_CACHE = Path("bench/out/default_engine_faces.npz")
# Below this loudness (dB under the loudest frame) a frame counts as silence.
SILENCE_DB = -45.0
# The envelope's smoothing (frames): the mouth cannot follow 40 ms loudness flicker, nor should it.
ENVELOPE_SIGMA = 1.0
# Lags (frames) over which the cross-correlation is reported; the headline r is at lag 0.
MAX_LAG = 3
# Phones for which a correct mouth is closed however loud the sound around them.
BILABIALS = frozenset("m b p".split())
# A mouth opening below this share of the mouth width counts as closed.
CLOSED_SHARE = 0.03
TARGETS = {"cpu_realtime_factor": 4.0, "lip_sync_correlation": 0.6}


def load_faces() -> dict[str, Face]:
    """The sample faces, found by MediaPipe; cached so that a GPU machine without MediaPipe can reuse them."""
    from avatar.config import SAMPLE_FACES_DIR
    from avatar.faces import read_face
    from avatar.images import load_photo

    faces = {name: read_face(load_photo(SAMPLE_FACES_DIR / name, 40_000_000, 25_000_000)) for name in PHOTOS}
    FACE_CACHE.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name, face in faces.items():
        for field in ("photo", "crop", "landmarks", "crop_to_photo"):
            arrays[f"{name}:{field}"] = getattr(face, field)
    np.savez_compressed(FACE_CACHE, **arrays)
    return faces


def cached_faces() -> dict[str, Face]:
    data = np.load(FACE_CACHE)
    faces = {}
    for name in PHOTOS:
        landmarks = data[f"{name}:landmarks"]
        faces[name] = Face(
            photo=data[f"{name}:photo"],
            crop=data[f"{name}:crop"],
            landmarks=landmarks,
            crop_to_photo=data[f"{name}:crop_to_photo"],
            detected=DetectedFace(landmarks=landmarks, blendshapes={}, pose=(0.0, 0.0, 0.0)),
        )
    return faces


def speak_all() -> list[Utterance]:
    from avatar.speech.offline_voice import OfflineVoice

    voice = OfflineVoice()
    return [voice.speak(text).resampled(ENGINE_SAMPLE_RATE) for text in SENTENCES]


def render(engine: DefaultEngine, face: Face, utterances: list[Utterance]) -> tuple[np.ndarray, float]:
    """All frames of one session over `utterances` and the seconds spent rendering them."""
    session = TalkingFace(Unbatched(engine), face_crop(face))
    start = time.perf_counter()
    chunks = [frames for utterance in utterances for frames in session.push(utterance)]
    chunks += list(session.finish())
    return np.concatenate(chunks), time.perf_counter() - start


def cpu_speed(face: Face, utterances: list[Utterance]) -> dict[str, float]:
    engine = DefaultEngine("cpu")
    render(engine, face, utterances[:1])
    frames, seconds = render(engine, face, utterances)
    return {
        "frames": len(frames),
        "seconds": seconds,
        "fps": len(frames) / seconds,
        "realtime": len(frames) / seconds / FPS,
    }


def gpu_speed(face: Face, batches: list[int], steps: int = 50) -> dict[str, float]:
    """Frames/s of `n` sessions drawn in one step of the engine (one session after another within it)."""
    engine = DefaultEngine("cuda")
    audio = np.random.default_rng(0).normal(0, 0.1, steps * SAMPLES_PER_FRAME).astype(np.float32)
    chunk = SpeechChunk(audio, steps)
    results = {}
    for count in batches:
        states = [engine.open(face_crop(face)) for _ in range(count)]
        list(engine.draw(states, [chunk] * count))
        torch.cuda.synchronize()
        start = time.perf_counter()
        frames = sum(len(out) for step in engine.draw(states, [chunk] * count) for out in step)
        torch.cuda.synchronize()
        results[str(count)] = frames / (time.perf_counter() - start)
    return results


def frame_loudness_db(audio: np.ndarray, frames: int) -> np.ndarray:
    padded = np.zeros(frames * SAMPLES_PER_FRAME, np.float32)
    padded[: min(len(audio), len(padded))] = audio[: len(padded)]
    rms = np.sqrt(np.mean(padded.reshape(frames, SAMPLES_PER_FRAME) ** 2, axis=1) + 1e-12)
    level = 20 * np.log10(rms)
    return level - level.max()


def mouth_openings(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Independent landmark pass: inner-lip gap over mouth width per frame, and all landmarks."""
    from avatar.faces import find_faces

    openings, meshes = [], []
    for frame in frames:
        found = find_faces(frame)
        if not found:
            openings.append(np.nan)
            meshes.append(np.full((478, 2), np.nan, np.float32))
            continue
        points = found[0].landmarks
        openings.append(np.hypot(*(points[14] - points[13])) / np.hypot(*(points[291] - points[61])))
        meshes.append(points)
    return np.asarray(openings), np.stack(meshes)


def through_video(frames: np.ndarray, audio: np.ndarray, folder: Path) -> np.ndarray:
    """Encode as the app does (H.264 MP4) and decode again, so the pass sees the real video."""
    from avatar.media import encode_segment, read_frames

    path = encode_segment(frames, audio, folder / "take.mp4", sample_rate=ENGINE_SAMPLE_RATE)
    return read_frames(path)


def loudness_envelope(level: np.ndarray) -> np.ndarray:
    """Per-frame dB floored at the silence level and smoothed like a syllable envelope (a Gaussian over ~2 frames)."""
    return gaussian_filter1d(np.clip(level, SILENCE_DB, 0.0), ENVELOPE_SIGMA, mode="nearest")


def correlation(opening: np.ndarray, envelope: np.ndarray, lag: int = 0) -> float:
    """Pearson r of mouth opening at frame t and envelope at frame t + lag (lag > 0: the mouth leads)."""
    if lag > 0:
        opening, envelope = opening[:-lag], envelope[lag:]
    elif lag < 0:
        opening, envelope = opening[-lag:], envelope[:lag]
    found = ~np.isnan(opening)
    return float(np.corrcoef(opening[found], envelope[found])[0, 1])


def bilabial_frames(utterance: Utterance, frames: int) -> np.ndarray:
    """Frames whose centre falls in an m, b or p: loud or about to be, yet rightly closed."""
    centres = (np.arange(frames) + 0.5) / FPS
    closed = np.zeros(frames, bool)
    for phone in utterance.phones:
        if phone.symbol in BILABIALS:
            closed |= (centres >= phone.start) & (centres < phone.end)
    return closed


def lip_sync(face: Face, utterances: list[Utterance], folder: Path) -> dict[str, float]:
    engine = DefaultEngine("cpu")
    openings, loudness, envelopes, bilabial = [], [], [], []
    for utterance in utterances:
        frames, _ = render(engine, face, [utterance])
        decoded = through_video(frames, utterance.audio, folder)
        opening, _ = mouth_openings(decoded)
        openings.append(opening[: len(frames)])
        level = frame_loudness_db(utterance.audio, len(frames))
        loudness.append(level)
        envelopes.append(loudness_envelope(level))
        bilabial.append(bilabial_frames(utterance, len(frames)))
    opening, level, envelope = np.concatenate(openings), np.concatenate(loudness), np.concatenate(envelopes)
    closures = np.concatenate(bilabial)
    found = ~np.isnan(opening)
    silent = found & (level < SILENCE_DB)
    lags = {lag: correlation(opening, envelope, lag) for lag in range(-MAX_LAG, MAX_LAG + 1)}
    best = max(lags, key=lags.get)
    return {
        "correlation": lags[0],
        "correlation_best_lag": lags[best],
        "best_lag_frames": best,
        "correlation_unsmoothed": correlation(opening, np.clip(level, SILENCE_DB, 0.0)),
        "correlation_without_bilabials": correlation(np.where(closures, np.nan, opening), envelope),
        "bilabial_share": float(closures.mean()),
        "frames": int(len(opening)),
        "frames_without_face": int((~found).sum()),
        "silent_frames": int(silent.sum()),
        "silent_closed_share": float((opening[silent] < CLOSED_SHARE).mean()) if silent.any() else float("nan"),
        "silent_mean_opening": float(opening[silent].mean()) if silent.any() else float("nan"),
        "speech_mean_opening": float(opening[found & ~silent].mean()),
    }


def stability(face: Face, utterances: list[Utterance], seconds: float = 60.0) -> dict[str, float]:
    """Background motion and identity drift over about a minute of speech, silent at both ends."""
    pause = np.zeros(ENGINE_SAMPLE_RATE // 2, np.float32)
    audio = [pause]
    while sum(len(a) for a in audio) < seconds * ENGINE_SAMPLE_RATE:
        audio += [u.audio for u in utterances] + [pause]
    speech = Utterance("minute", np.concatenate(audio + [pause, pause]), ENGINE_SAMPLE_RATE)
    frames, _ = render(DefaultEngine("cpu"), face, [speech])
    ys, xs = np.mgrid[: face.size, : face.size]
    oval = face.landmarks
    centre, radius = oval.mean(axis=0), (oval.max(axis=0) - oval.min(axis=0)) / 2
    outside = ((xs - centre[0]) / (radius[0] * 2.0)) ** 2 + ((ys - centre[1]) / (radius[1] * 2.0)) ** 2 > 1
    change = [
        np.abs(frames[i + 1][outside].astype(np.int16) - frames[i][outside]).mean() for i in range(len(frames) - 1)
    ]
    _, start = mouth_openings(frames[2:3])
    _, end = mouth_openings(frames[-3:-2])
    drift = float(np.linalg.norm(start[0] - end[0], axis=1).mean())
    return {
        "seconds": len(frames) / FPS,
        "background_mean_abs_change": float(np.mean(change)),
        "background_outside_share": float(outside.mean()),
        "identity_drift_px": drift,
        "identity_drift_share_of_face": drift / float(radius.mean() * 2),
    }


def table(results: dict) -> str:
    rows = [("measure", "value", "target", "met")]
    for name, speed in results.get("cpu", {}).items():
        met = "yes" if speed["realtime"] >= TARGETS["cpu_realtime_factor"] else "no"
        rows.append(
            (
                f"CPU {name} frames/s ({speed['frames']} frames)",
                f"{speed['fps']:.1f} ({speed['realtime']:.1f}x real time)",
                ">= 4x",
                met,
            )
        )
    for count, fps in results.get("gpu", {}).items():
        rows.append((f"GPU frames/s, {count} sessions in one step", f"{fps:.0f}", "report", ""))
    for name, sync in results.get("lip_sync", {}).items():
        met = "yes" if sync["correlation"] >= TARGETS["lip_sync_correlation"] else "no"
        rows.append((f"lip sync r, {name}", f"{sync['correlation']:.2f}", ">= 0.6", met))
        rows.append(
            (
                f"  r at best lag / unsmoothed / without m b p, {name}",
                f"{sync['correlation_best_lag']:.2f} at {sync['best_lag_frames']:+d} / "
                f"{sync['correlation_unsmoothed']:.2f} / {sync['correlation_without_bilabials']:.2f}",
                "report",
                "",
            )
        )
        rows.append(
            (
                f"closed in silence, {name}",
                f"{sync['silent_closed_share']:.0%} of {sync['silent_frames']} frames",
                "report",
                "",
            )
        )
        rows.append(
            (
                f"opening silence/speech, {name}",
                f"{sync['silent_mean_opening']:.3f} / {sync['speech_mean_opening']:.3f}",
                "report",
                "",
            )
        )
    for name, stable in results.get("stability", {}).items():
        rows.append(
            (f"background change/frame, {name}", f"{stable['background_mean_abs_change']:.3f} (0..255)", "report", "")
        )
        rows.append(
            (
                f"identity drift over {stable['seconds']:.0f} s, {name}",
                f"{stable['identity_drift_px']:.2f} px of 512",
                "report",
                "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-only", action="store_true", help="batched GPU speed from cached faces, nothing else")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--json", type=Path, default=Path("bench/out/default_engine.json"))
    parser.add_argument("--results", type=Path, default=Path("bench/RESULTS.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    results: dict = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": args.threads,
            "torch": torch.__version__,
        }
    }
    if args.json.exists():
        previous = json.loads(args.json.read_text())
        results = {**previous, "machine": results["machine"]} if args.gpu_only else results
        if not args.gpu_only and "gpu" in previous:
            results["gpu"], results["gpu_device"] = previous["gpu"], previous.get("gpu_device", "")
    if args.gpu_only:
        faces = cached_faces()
        results["gpu"] = gpu_speed(faces[PHOTOS[0]], batches)
        results["gpu_device"] = torch.cuda.get_device_name()
    else:
        load = os.getloadavg()[0]
        faces = load_faces()
        utterances = speak_all()
        results["machine"]["load_average_before"] = load
        face = faces[PHOTOS[0]]
        results["cpu"] = {"crop": cpu_speed(face, utterances)}
        if torch.cuda.is_available():
            results["gpu"] = gpu_speed(face, batches)
            results["gpu_device"] = torch.cuda.get_device_name()
        with tempfile.TemporaryDirectory() as folder:
            results["lip_sync"] = {
                name.split(".")[0]: lip_sync(f, utterances, Path(folder)) for name, f in faces.items()
            }
        results["stability"] = {PHOTOS[0].split(".")[0]: stability(face, utterances)}
        results["machine"]["load_average_after"] = os.getloadavg()[0]
    text = table(results)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    machine = results["machine"]
    notes = [
        "`python bench/default_engine.py` (CPU: speed, lip sync, stability; GPU rows from"
        " `python bench/default_engine.py --gpu-only` on a GPU machine).",
        "",
        text,
        "",
        f"CPU: {machine['cpu']}, {machine['threads']} torch threads, torch {machine['torch']}; "
        f"load average before/after: {machine.get('load_average_before', float('nan')):.1f} / "
        f"{machine.get('load_average_after', float('nan')):.1f} (other work on the machine slows the CPU rows).",
    ]
    if "gpu_device" in results:
        notes.append(f"GPU: {results['gpu_device']}, 50 frames per session per step.")
    notes += [
        "Lip sync: Pearson r between the inner-lip gap over mouth width (MediaPipe on the decoded MP4) and the"
        f" loudness envelope: RMS in dB per 40 ms frame under the sentence's loudest, floored at {SILENCE_DB:.0f} dB"
        f" and smoothed with a Gaussian of {ENVELOPE_SIGMA:g} frame, over {len(SENTENCES)} sentences from the offline"
        f" voice; the headline is at lag 0, the best lag is searched over +-{MAX_LAG} frames (+: mouth leads) and"
        " only reported. 'Unsmoothed' is the same r against the raw per-frame dB; 'without m b p' leaves out frames"
        " inside a bilabial, where a correct mouth is closed while the voice is loud."
        f" Silence: frames under {SILENCE_DB:.0f} dB; closed means a gap under {CLOSED_SHARE:.0%} of the"
        " mouth width. Background: pixels outside twice the face's radius. Drift: mean landmark distance between a"
        " silent frame at the start and one at the end of the minute (idle sway included).",
    ]
    write_section(SECTION, "\n".join(notes), args.results)


if __name__ == "__main__":
    main()
