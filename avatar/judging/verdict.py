"""From measures to a verdict a person can act on: Good, Usable (with what to expect) or Not usable (and why).

Every check gives a finding: a level, a short phrase for the verdict line, a sentence for
the reasons list, and a score penalty. The score orders photos. Whether a photo can run at
all (a face, only one, large enough) and when its video looks softer are the face rules of
avatar/faces.py, which a run applies too; the thresholds below are the rest of the policy,
kept together so they can be read and tuned in one place. A verdict is for one framing (whole
photo by default): what a viewer will see, a softer close-up or filled-in edges, depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from avatar.faces import SHOWN_FILL, SIDEWAYS_ROLL, Refusal, fill_note, fill_shows, softer_video
from avatar.framing import Framing
from avatar.judging.checks import FaceMeasures, PhotoMeasures


class Level(IntEnum):
    """How much a finding matters; the worst one sets the verdict."""

    OK = 0
    WARN = 1
    BLOCK = 2


@dataclass(frozen=True)
class Thresholds:
    """Where each measure turns from fine to a warning to a refusal."""

    min_face_pixels: int = 64
    crop_size: int = 512
    sharp_crop_side: float = 384.0
    yaw_warn: float = 20.0
    yaw_block: float = 40.0
    pitch_warn: float = 25.0
    pitch_block: float = 40.0
    roll_warn: float = 15.0
    eyes_closed: float = 0.5
    jaw_open: float = 0.35
    lip_gap: float = 0.12
    too_dark: float = 30.0
    dark: float = 70.0
    bright: float = 215.0
    clipped: float = 0.15
    flat: float = 45.0
    blurred: float = 0.12
    soft: float = 0.3
    glare: float = 0.08
    occlusion_max_yaw: float = 30.0
    grey: float = 3.0
    # A close-up with more of its square filled in than this is a warning; each filled share costs this many points.
    filled_warn: float = 0.05
    filled_penalty: float = 50.0
    low_resolution: int = 256


@dataclass(frozen=True)
class Finding:
    """One check's outcome: `short` goes in the verdict line, `detail` in the reasons."""

    level: Level
    short: str
    detail: str
    penalty: float = 0.0


@dataclass(frozen=True)
class Verdict:
    """The answer for one photo: a headline, the reasons behind it and a score that orders photos."""

    level: Level
    headline: str
    findings: tuple[Finding, ...]
    score: float

    @property
    def usable(self) -> bool:
        return self.level < Level.BLOCK

    @property
    def problems(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level > Level.OK)


def _ramp(value: float, good: float, bad: float) -> float:
    """0 at `good`, 1 at `bad` and beyond, linear between (either direction)."""
    if good == bad:
        return float(value >= bad)
    return min(1.0, max(0.0, (value - good) / (bad - good)))


def photo_findings(m: PhotoMeasures, t: Thresholds) -> list[Finding]:
    """What can be said without a face: colour, resolution, light."""
    findings = []
    if m.colourfulness < t.grey:
        findings.append(
            Finding(
                Level.WARN, "photo is black and white", "The photo has no colour, so the video will be grey too.", 5
            )
        )
    if min(m.width, m.height) < t.low_resolution:
        findings.append(
            Finding(
                Level.WARN,
                "photo is low resolution",
                f"The photo is only {m.width}x{m.height} pixels; a larger original gives a sharper video.",
                10,
            )
        )
    if m.face is None:
        if m.brightness < t.dark:
            findings.append(
                Finding(
                    Level.WARN,
                    "photo is dark",
                    f"The photo is dark overall (average brightness {m.brightness:.0f} of 255).",
                    0,
                )
            )
        elif m.brightness > t.bright:
            findings.append(
                Finding(
                    Level.WARN,
                    "photo is very bright",
                    f"The photo is very bright overall (average brightness {m.brightness:.0f} of 255).",
                    0,
                )
            )
        if m.contrast < t.flat:
            findings.append(Finding(Level.WARN, "photo has little contrast", "The photo has very little contrast.", 0))
    return findings


def face_count_findings(m: PhotoMeasures) -> list[Finding]:
    """One face, and what else the photo shows (the face rules have already refused several similar faces)."""
    extra = f" ({m.faces - 1} much smaller face(s) in the background are ignored)" if m.faces > 1 else ""
    return [Finding(Level.OK, "one face", f"One face found{extra}.")]


def size_findings(f: FaceMeasures, t: Thresholds, framing: Framing = Framing.WHOLE) -> list[Finding]:
    """Face size in photo pixels, and how far the engine must enlarge it (a face too small is the rules' refusal).

    Only a close-up shows the enlarged square; the whole photo shows the face at the photo's own scale.
    """
    side = f.close_up_side if framing is Framing.CLOSE_UP else f.crop_side
    scale = f"the engine's crop takes {side:.0f} px of the photo"
    penalty = 20 * _ramp(side, t.sharp_crop_side, t.min_face_pixels * 2)
    if framing is Framing.CLOSE_UP and softer_video(side, t.crop_size):
        return [
            Finding(
                Level.WARN,
                "face is small, expect a softer video",
                f"The face is {f.width:.0f} px wide and {scale}, enlarged to {t.crop_size}: "
                "the video will look softer.",
                penalty,
            )
        ]
    return [Finding(Level.OK, "face size", f"The face is {f.width:.0f} px wide; {scale}.", penalty)]


def pose_findings(f: FaceMeasures, t: Thresholds) -> list[Finding]:
    """Head turned, nodded or tilted: the engine animates faces that look at the camera.

    A head leaning past `SIDEWAYS_ROLL` is the face rules' refusal (the photo is on its side), not a pose finding.
    """
    findings = []
    pose = f"yaw {f.yaw:+.0f}°, pitch {f.pitch:+.0f}°, roll {f.roll:+.0f}°"
    upright = abs(f.roll) <= SIDEWAYS_ROLL
    if abs(f.yaw) > t.yaw_block:
        findings.append(
            Finding(
                Level.BLOCK,
                "head turned away",
                f"The head is turned {abs(f.yaw):.0f}° to the "
                "side; the engine needs a face that looks roughly at the camera.",
                100,
            )
        )
    elif abs(f.yaw) > t.yaw_warn:
        findings.append(
            Finding(
                Level.WARN,
                "head turned to the side",
                f"The head is turned {abs(f.yaw):.0f}° to the side; expect some distortion when the mouth moves.",
                abs(f.yaw) * 0.6,
            )
        )
    if abs(f.pitch) > t.pitch_block:
        findings.append(
            Finding(
                Level.BLOCK,
                "head tilted too far up or down",
                f"The head is tilted {abs(f.pitch):.0f}° up or down; use a photo facing the camera.",
                100,
            )
        )
    elif abs(f.pitch) > t.pitch_warn:
        findings.append(
            Finding(
                Level.WARN,
                "head tilted up or down",
                f"The head is tilted {abs(f.pitch):.0f}° up or down; the mouth may look odd.",
                abs(f.pitch) * 0.4,
            )
        )
    if upright and abs(f.roll) > t.roll_warn:
        findings.append(
            Finding(
                Level.WARN,
                "head tilted sideways",
                f"The head leans {abs(f.roll):.0f}° sideways; the crop straightens it.",
                3,
            )
        )
    if upright and not findings:
        penalty = 0.3 * abs(f.yaw) + 0.2 * max(0.0, abs(f.pitch) - 10)
        findings.append(Finding(Level.OK, "facing the camera", f"Facing the camera ({pose}).", penalty))
    return findings


def expression_findings(f: FaceMeasures, t: Thresholds) -> list[Finding]:
    """Eyes open and mouth closed at rest: the engine opens the mouth and blinks by itself."""
    findings = []
    if f.eye_blink > t.eyes_closed:
        findings.append(
            Finding(Level.WARN, "eyes look closed", "The eyes look closed; the avatar will speak with closed eyes.", 15)
        )
    else:
        findings.append(Finding(Level.OK, "eyes open", "Eyes open."))
    if f.jaw_open > t.jaw_open or f.lip_gap > t.lip_gap:
        findings.append(
            Finding(
                Level.WARN,
                "mouth is open",
                "The mouth is open in the photo; the engine speaks best from a closed mouth at rest.",
                10,
            )
        )
    else:
        findings.append(Finding(Level.OK, "mouth closed", "Mouth closed at rest."))
    return findings


def light_findings(f: FaceMeasures, t: Thresholds) -> list[Finding]:
    """Exposure and contrast measured on the face itself, not the whole photo."""
    light = f"face brightness {f.brightness:.0f} of 255, contrast {f.contrast:.0f}"
    if f.brightness < t.too_dark:
        return [
            Finding(
                Level.BLOCK,
                "face is far too dark",
                f"The face is far too dark ({light}); brighten the photo or use one taken in better light.",
                100,
            )
        ]
    findings = []
    if f.brightness < t.dark:
        findings.append(
            Finding(
                Level.WARN,
                "face is dark",
                f"The face is dark ({light}); the video will be dark too.",
                20 * _ramp(f.brightness, t.dark, t.too_dark),
            )
        )
    elif f.brightness > t.bright or f.clipped > t.clipped:
        findings.append(Finding(Level.WARN, "face is overexposed", f"Parts of the face are washed out ({light}).", 15))
    if f.contrast < t.flat:
        findings.append(Finding(Level.WARN, "face looks flat", f"The face has little contrast ({light}).", 10))
    if not findings:
        findings.append(Finding(Level.OK, "well lit", f"Well lit ({light})."))
    return findings


def sharpness_findings(f: FaceMeasures, t: Thresholds) -> list[Finding]:
    """Blur on the face: the engine cannot add detail that the photo lacks."""
    detail = f"sharpness {f.sharpness:.2f}"
    penalty = 25 * _ramp(f.sharpness, 0.6, t.blurred)
    if f.sharpness < t.blurred:
        return [
            Finding(
                Level.WARN,
                "face is blurred, expect a blurry video",
                f"The face is blurred ({detail}); a sharper photo gives a much better video.",
                penalty,
            )
        ]
    if f.sharpness < t.soft:
        return [Finding(Level.WARN, "face is slightly soft", f"The face is slightly soft ({detail}).", penalty)]
    return [Finding(Level.OK, "sharp", f"Sharp ({detail}).", penalty)]


def occlusion_findings(f: FaceMeasures, t: Thresholds) -> list[Finding]:
    """Glasses glare and patches of the face that look covered (hair, a hand), where they can be told."""
    findings = []
    if f.glare > t.glare:
        findings.append(
            Finding(
                Level.WARN,
                "glare on the eyes",
                "Bright reflections cover the eyes (glasses glare?); they will stay fixed while the face moves.",
                8,
            )
        )
    covered = f.odd_patches if abs(f.yaw) <= t.occlusion_max_yaw and len(f.odd_patches) <= 2 else ()
    if covered:
        where = " and ".join(covered)
        findings.append(
            Finding(
                Level.WARN,
                f"something may cover the {where}",
                f"The {where} looks unlike the rest of the face: hair, a hand or an object may cover it.",
                10,
            )
        )
    if not findings:
        findings.append(Finding(Level.OK, "nothing covers the face", "Nothing detectable covers the face."))
    return findings


def framing_findings(f: FaceMeasures, t: Thresholds, framing: Framing = Framing.WHOLE) -> list[Finding]:
    """What of the engine's filled-in edges the viewer sees: in a close-up, marked down by the share shown.

    The whole photo never shows them (only the photo's own pixels lie around the face), so there it is
    said, not counted.
    """
    if framing is Framing.CLOSE_UP:
        if not fill_shows(f.close_up_filled, framing):
            return []
        level = Level.WARN if f.close_up_filled > t.filled_warn else Level.OK
        penalty = t.filled_penalty * f.close_up_filled
        return [Finding(level, "close-up reaches past the photo", fill_note(f.close_up_filled), penalty)]
    if f.outside_photo < SHOWN_FILL:
        return []
    return [
        Finding(
            Level.OK,
            "photo framed tightly",
            f"The photo ends close to the face: {f.outside_photo:.0%} of the engine's square reaches past it "
            "and is filled in for the engine, but the whole photo shows none of it.",
        )
    ]


def judge(
    m: PhotoMeasures, refused: Refusal | None, t: Thresholds | None = None, framing: Framing = Framing.WHOLE
) -> Verdict:
    """The verdict for one photo's measures, as the viewer of `framing` will see it.

    `refused` is the face rules' refusal, the very one a run would give, so it is this verdict's
    refusal too; it stands in for the face count and size findings. The face's other checks still
    run when there is one face, so that a refused photo lists everything else worth fixing.
    """
    t = t or Thresholds()
    findings = [Finding(Level.BLOCK, refused.short, refused.sentence, 100)] if refused else []
    if m.face is not None and not m.competing_faces:
        if refused is None:
            findings.extend(face_count_findings(m) + size_findings(m.face, t, framing))
        for check in (
            pose_findings,
            expression_findings,
            light_findings,
            sharpness_findings,
            occlusion_findings,
        ):
            findings.extend(check(m.face, t))
        findings.extend(framing_findings(m.face, t, framing))
    findings.extend(photo_findings(m, t))
    level = max(f.level for f in findings)
    score = max(0.0, 100.0 - sum(f.penalty for f in findings))
    return Verdict(level=level, headline=headline(level, findings), findings=tuple(findings), score=round(score, 1))


def headline(level: Level, findings: list[Finding]) -> str:
    """'Good', 'Usable: face is small, expect a softer video' or 'Not usable: two faces'."""
    if level == Level.OK:
        return "Good"
    worst = [f.short for f in sorted(findings, key=lambda f: -f.penalty) if f.level == level]
    label = "Usable" if level == Level.WARN else "Not usable"
    return f"{label}: {'; '.join(worst[:2])}"
