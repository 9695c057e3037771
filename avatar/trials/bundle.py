"""The review bundle, for people who install nothing: the MP4s, a contact sheet, one offline HTML page, a grid MP4.

The page is self-contained (inline style and script) and names only files inside the zip,
so it plays from any folder, in any browser, with no network. Reviewers watch muted and
judge lip-sync by reading along, so the page shows each video's captions under it (the cues
are in the page: a browser will not load a caption file from a folder), every MP4 carries
them as a subtitle track with a WebVTT file beside it, and the grid MP4, made for chat apps
that show no subtitle tracks, can have them burned in under the videos.
"""

from __future__ import annotations

import html
import json
import textwrap
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from avatar.captions import Cue, as_json, cue_at, webvtt
from avatar.config import FPS
from avatar.judging.inspection import PhotoReport
from avatar.judging.verdict import Level
from avatar.media import AUDIO_CODEC, AUDIO_OPTIONS, PIXEL_FORMAT, VIDEO_CODEC, VIDEO_OPTIONS

LEVEL_COLOURS = {Level.OK: (46, 160, 67), Level.WARN: (214, 140, 0), Level.BLOCK: (200, 45, 45)}
SHEET_CELL = 300
SHEET_TEXT_HEIGHT = 170
GRID_LABEL_HEIGHT = 40
# The band under the grid that burned-in captions are drawn in, and its colours (the word being said marked).
CAPTION_BAND_HEIGHT = 48
CAPTION_COLOURS = {"band": (0, 0, 0), "text": (255, 255, 255), "spoken": (0, 0, 0), "mark": (255, 212, 0)}
PAGE_NAME = "index.html"
SHEET_NAME = "contact-sheet.png"
GRID_NAME = "grid.mp4"


@dataclass(frozen=True)
class Entry:
    """One photo in the bundle: its rank, its report, its video if it spoke, and that video's captions."""

    rank: int
    report: PhotoReport
    video: Path | None
    captions: tuple[Cue, ...] = ()


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def thumbnail(report: PhotoReport, side: int) -> Image.Image:
    """The photo fitted in a square, with the engine's crop drawn in the verdict's colour."""
    canvas = Image.new("RGB", (side, side), (235, 235, 235))
    if report.photo is None:
        return canvas
    height, width = report.photo.shape[:2]
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    offset = ((side - size[0]) // 2, (side - size[1]) // 2)
    canvas.paste(Image.fromarray(report.photo).resize(size, Image.Resampling.LANCZOS), offset)
    if report.crop_box is not None:
        points = [(x * scale + offset[0], y * scale + offset[1]) for x, y in report.crop_box]
        ImageDraw.Draw(canvas).polygon(points, outline=LEVEL_COLOURS[report.verdict.level], width=3)
    return canvas


def contact_sheet(entries: list[Entry], path: Path) -> Path:
    """One PNG of every photo with its rank, score, verdict and main reasons, best first."""
    columns = min(4, max(1, len(entries)))
    rows = -(-len(entries) // columns)
    cell_height = SHEET_CELL + SHEET_TEXT_HEIGHT
    sheet = Image.new("RGB", (columns * SHEET_CELL, rows * cell_height), "white")
    draw = ImageDraw.Draw(sheet)
    title, body = _font(16), _font(13)
    for index, entry in enumerate(entries):
        left, top = (index % columns) * SHEET_CELL, (index // columns) * cell_height
        sheet.paste(thumbnail(entry.report, SHEET_CELL - 10), (left + 5, top + 5))
        verdict = entry.report.verdict
        y = top + SHEET_CELL + 2
        draw.text((left + 8, y), f"#{entry.rank} {entry.report.name[:28]}  ({verdict.score:.0f})", "black", title)
        y += 22
        for line in textwrap.wrap(verdict.headline, 38)[:2]:
            draw.text((left + 8, y), line, LEVEL_COLOURS[verdict.level], title)
            y += 20
        reasons = " ".join(f.detail for f in verdict.problems) or "No problems found."
        for line in textwrap.wrap(reasons, 44)[:5]:
            draw.text((left + 8, y), line, (60, 60, 60), body)
            y += 16
    sheet.save(path)
    return path


def _frames(path: Path) -> Iterator[np.ndarray]:
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    width, height = next(reader)["size"]
    for frame in reader:
        yield np.frombuffer(frame, np.uint8).reshape(height, width, 3)


def _label(entry: Entry, width: int) -> np.ndarray:
    """The band under a grid tile: rank and name, then the verdict, beside a bar in the verdict's colour."""
    band = Image.new("RGB", (width, GRID_LABEL_HEIGHT), (20, 20, 20))
    draw = ImageDraw.Draw(band)
    draw.rectangle((0, 0, 6, GRID_LABEL_HEIGHT), fill=LEVEL_COLOURS[entry.report.verdict.level])
    characters = (width - 16) // 7
    draw.text((12, 2), f"#{entry.rank} {entry.report.name}"[:characters], "white", _font(14))
    draw.text((12, 21), entry.report.verdict.headline[:characters], (210, 210, 210), _font(13))
    return np.asarray(band)


def _fit(frame: np.ndarray, side: int) -> np.ndarray:
    """A frame scaled into a black square tile, aspect kept."""
    height, width = frame.shape[:2]
    scale = side / max(height, width)
    size = (max(2, round(width * scale)), max(2, round(height * scale)))
    tile = np.zeros((side, side, 3), np.uint8)
    top, left = (side - size[1]) // 2, (side - size[0]) // 2
    tile[top : top + size[1], left : left + size[0]] = np.asarray(Image.fromarray(frame).resize(size))
    return tile


def _caption_font(text: str, width: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The largest font, up to a readable size for the band, at which `text` fits in `width`."""
    size = min(28, max(14, width // 19))
    font = _font(size)
    while size > 10 and font.getlength(text) > width - 16:
        size -= 2
        font = _font(size)
    return font


def caption_band(cues: Sequence[Cue], seconds: float, width: int) -> np.ndarray:
    """The band under the grid at `seconds`: the line being said, centred, the word being said marked; else empty."""
    band = Image.new("RGB", (width, CAPTION_BAND_HEIGHT), CAPTION_COLOURS["band"])
    cue = cue_at(cues, seconds)
    if cue is not None:
        draw = ImageDraw.Draw(band)
        font = _caption_font(cue.text, width)
        spoken = cue.word_at(seconds)
        space = font.getlength(" ")
        x = (width - font.getlength(cue.text)) / 2
        top = (CAPTION_BAND_HEIGHT - font.size) / 2 - 2
        for word in cue.words:
            length = font.getlength(word.text)
            colour = CAPTION_COLOURS["text"]
            if word is spoken:
                draw.rectangle((x - 3, 6, x + length + 3, CAPTION_BAND_HEIGHT - 6), fill=CAPTION_COLOURS["mark"])
                colour = CAPTION_COLOURS["spoken"]
            draw.text((x, top), word.text, colour, font)
            x += length + space
    return np.asarray(band)


def grid_video(entries: list[Entry], path: Path, captions: Sequence[Cue] = ()) -> Path:
    """One MP4 with every video in a grid, frame for frame, with the best photo's sound (for chat apps).

    Videos shorter than the longest hold their last frame. With `captions` (every photo says
    the same recording, so one set serves all), they are burned in, in a band under the grid:
    chat apps show no subtitle track.
    """
    spoken = [entry for entry in entries if entry.video is not None]
    if not spoken:
        raise ValueError("no videos to put in a grid")
    columns = int(np.ceil(np.sqrt(len(spoken))))
    rows = -(-len(spoken) // columns)
    side = 384 if len(spoken) <= 4 else 256
    tile_height = side + GRID_LABEL_HEIGHT
    band = CAPTION_BAND_HEIGHT if captions else 0
    bands: dict[tuple[int, int], np.ndarray] = {}
    labels = [_label(entry, side) for entry in spoken]
    readers = [_frames(entry.video) for entry in spoken]
    last: list[np.ndarray | None] = [None] * len(spoken)
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (columns * side, rows * tile_height + band),
        fps=FPS,
        codec=VIDEO_CODEC,
        pix_fmt_out=PIXEL_FORMAT,
        quality=None,
        bitrate=None,
        macro_block_size=2,
        audio_path=str(spoken[0].video),
        audio_codec=AUDIO_CODEC,
        output_params=[*VIDEO_OPTIONS, *AUDIO_OPTIONS, "-movflags", "+faststart"],
        ffmpeg_log_level="error",
    )
    writer.send(None)
    for index in count():
        fresh = [next(reader, None) for reader in readers]
        if all(frame is None for frame in fresh):
            break
        canvas = np.zeros((rows * tile_height + band, columns * side, 3), np.uint8)
        if band:
            canvas[rows * tile_height :] = _cached_band(bands, captions, index / FPS, columns * side)
        for tile, frame in enumerate(fresh):
            if frame is not None:
                last[tile] = _fit(frame, side)
            top, left = (tile // columns) * tile_height, (tile % columns) * side
            if last[tile] is not None:
                canvas[top : top + side, left : left + side] = last[tile]
            canvas[top + side : top + tile_height, left : left + side] = labels[tile]
        writer.send(np.ascontiguousarray(canvas))
    writer.close()
    return path


def _cached_band(bands: dict, cues: Sequence[Cue], seconds: float, width: int) -> np.ndarray:
    """`caption_band`, drawn once for each line and word being said."""
    cue = cue_at(cues, seconds)
    word = cue.word_at(seconds) if cue is not None else None
    key = (cues.index(cue) if cue is not None else -1, cue.words.index(word) if word is not None else -1)
    if key not in bands:
        bands[key] = caption_band(cues, seconds, width)
    return bands[key]


def captions_name(video: Path) -> str:
    """The WebVTT file beside a video in the bundle: 'videos/01-astronaut.vtt'."""
    return f"videos/{video.with_suffix('.vtt').name}"


def _caption_box(entry: Entry) -> str:
    """The line under a video that the page's script fills from the cues it holds, and a link to the WebVTT file."""
    if not entry.captions:
        return ""
    cues = html.escape(json.dumps(as_json(entry.captions), ensure_ascii=False), quote=True)
    link = html.escape(captions_name(entry.video))
    return (
        f'<p class="caption" data-cues="{cues}"></p>'
        f'<a class="vtt" href="{link}" download>Captions (WebVTT)</a>'
    )


def review_page(entries: list[Entry], sentence: str) -> str:
    """The HTML page: all videos side by side, started and stepped together, the verdicts beside them."""
    cards = []
    for entry in entries:
        report, verdict = entry.report, entry.report.verdict
        reasons = "".join(f'<li class="{f.level.name.lower()}">{html.escape(f.detail)}</li>' for f in verdict.findings)
        media = (
            f'<video class="trial" src="videos/{html.escape(entry.video.name)}" preload="auto" playsinline muted>'
            f"</video>{_caption_box(entry)}"
            if entry.video is not None
            else '<div class="novideo">No video: not usable</div>'
        )
        cards.append(
            f'<section class="card {verdict.level.name.lower()}"><h2>#{entry.rank} {html.escape(report.name)} '
            f'<span class="score">{verdict.score:.0f}</span></h2>{media}'
            f'<p class="verdict">{html.escape(verdict.headline)}</p><ul>{reasons}</ul></section>'
        )
    best = next((e for e in entries if e.video is not None), None)
    recommendation = (
        f"Recommended: <b>{html.escape(best.report.name)}</b> ({html.escape(best.report.verdict.headline)})"
        if best
        else "None of the photos is usable."
    )
    return PAGE_TEMPLATE.format(
        sentence=html.escape(sentence),
        recommendation=recommendation,
        cards="\n".join(cards),
        sheet=SHEET_NAME,
        fps=json.dumps(FPS),
    )


PAGE_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Photo trials</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; background: #fafafa; color: #222; }}
#grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 1em; }}
.card {{ background: white; border-radius: 8px; padding: .8em; border-top: 6px solid #999; }}
.card.ok {{ border-color: #2ea043; }} .card.warn {{ border-color: #d68c00; }} .card.block {{ border-color: #c82d2d; }}
.card h2 {{ font-size: 1em; margin: 0 0 .5em; }} .score {{ float: right; color: #666; }}
video, .novideo {{ width: 100%; aspect-ratio: 1; object-fit: contain; background: #111; display: block; }}
.caption {{ min-height: 2.8em; margin: .3em 0 0; text-align: center; font-size: 1.05em; line-height: 1.4em; }}
.caption span {{ padding: 0 .08em; border-radius: .2em; }} .caption .spoken {{ background: #ffd400; }}
.vtt {{ font-size: .8em; color: #555; }}
.novideo {{ color: #ccc; display: flex; align-items: center; justify-content: center; }}
.verdict {{ font-weight: 600; }} li {{ font-size: .85em; margin: .2em 0; }}
li.warn {{ color: #8a5a00; }} li.block {{ color: #a01818; }}
#controls {{ position: sticky; top: 0; background: #fafafa; padding: .5em 0; z-index: 1; }}
button {{ font-size: 1em; margin-right: .3em; }} img {{ max-width: 100%; }}
</style></head><body>
<h1>Photo trials</h1>
<p>Sentence: &ldquo;{sentence}&rdquo;</p>
<p>{recommendation}</p>
<div id="controls">
<button id="play">&#9654; Play all together</button><button id="pause">Pause</button>
<button id="back">&#9664; Frame</button><button id="forward">Frame &#9654;</button>
<label>Sound from <select id="sound"></select></label> <span id="clock">0.00 s</span>
</div>
<div id="grid">
{cards}
</div>
<h2>Contact sheet</h2>
<img src="{sheet}" alt="All photos with their verdicts">
<script>
const FPS = {fps};
const videos = Array.from(document.querySelectorAll('video.trial'));
const sound = document.getElementById('sound');
const clock = document.getElementById('clock');
videos.forEach((video, index) => {{
  const option = document.createElement('option');
  option.value = index;
  option.textContent = video.closest('.card').querySelector('h2').firstChild.textContent.trim();
  sound.appendChild(option);
}});
/* Each video's line of captions, the word being said marked, at the video's own time (playing, paused or stepped). */
const captions = videos.map(video => {{
  const box = video.closest('.card').querySelector('.caption');
  return {{ box, cues: box ? JSON.parse(box.dataset.cues) : [], key: null }};
}});
function caption(index) {{
  const shown = captions[index];
  if (!shown.box) return;
  const time = videos[index].currentTime;
  const cue = shown.cues.find(c => c.start <= time && time < c.end);
  const spoken = cue ? cue.words.findIndex(([, start, end]) => start <= time && time < end) : -1;
  const key = cue ? cue.start + ':' + spoken : '';
  shown.box.dataset.time = String(time);
  if (key === shown.key) return;
  shown.key = key;
  shown.box.replaceChildren();
  (cue ? cue.words : []).forEach(([text], at) => {{
    if (at) shown.box.append(' ');
    const word = document.createElement('span');
    word.textContent = text;
    if (at === spoken) word.className = 'spoken';
    shown.box.append(word);
  }});
}}
function hear() {{ videos.forEach((video, index) => {{ video.muted = String(index) !== sound.value; }}); }}
function seekAll(time) {{ videos.forEach(video => {{ video.currentTime = Math.min(time, video.duration || time); }}); }}
function pauseAll() {{ videos.forEach(video => video.pause()); }}
async function playAll() {{
  pauseAll(); seekAll(0); hear();
  await Promise.all(videos.map(video => video.play().catch(() => {{ video.muted = true; return video.play(); }})));
}}
function step(frames) {{ pauseAll(); seekAll(Math.max(0, (videos[0] ? videos[0].currentTime : 0) + frames / FPS)); }}
function keepTogether() {{
  const leader = videos[0];
  if (leader) {{
    clock.textContent = leader.currentTime.toFixed(2) + ' s';
    if (!leader.paused) {{
      videos.slice(1).forEach(video => {{
        if (!video.ended && Math.abs(video.currentTime - leader.currentTime) > 1.5 / FPS) {{
          video.currentTime = leader.currentTime;
        }}
      }});
    }}
  }}
  videos.forEach((video, index) => caption(index));
  requestAnimationFrame(keepTogether);
}}
sound.addEventListener('change', hear);
document.getElementById('play').addEventListener('click', playAll);
document.getElementById('pause').addEventListener('click', pauseAll);
document.getElementById('back').addEventListener('click', () => step(-1));
document.getElementById('forward').addEventListener('click', () => step(1));
requestAnimationFrame(keepTogether);
</script>
</body></html>
"""


def write_bundle(entries: list[Entry], sentence: str, path: Path, grid: Path | None = None) -> Path:
    """The zip: videos/NN-name.mp4 (and .vtt), the contact sheet, the page and the grid MP4 when one is given."""
    work = path.parent / f"{path.stem}-parts"
    work.mkdir(parents=True, exist_ok=True)
    sheet = contact_sheet(entries, work / SHEET_NAME)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(PAGE_NAME, review_page(entries, sentence))
        bundle.write(sheet, SHEET_NAME)
        for entry in entries:
            if entry.video is not None:
                bundle.write(entry.video, f"videos/{entry.video.name}", compress_type=zipfile.ZIP_STORED)
                if entry.captions:
                    bundle.writestr(captions_name(entry.video), webvtt(entry.captions))
        if grid is not None:
            bundle.write(grid, GRID_NAME, compress_type=zipfile.ZIP_STORED)
    return path
