"""The pages a shared link opens, served beside the app: `/share/<id>/` and the files of that share.

Anyone with the link may open them, with no cookie and without the app's page: a small page
with the video, the words, who made it and a download button (or a trial's review page), and
a plain 404 page for a link that has expired or never existed. All links inside are relative,
so the pages work under any URL prefix (a Hugging Face Space's, a proxy's).
"""

from __future__ import annotations

import html
import time
from datetime import datetime, timezone

import gradio as gr
from fastapi import Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from gradio import route_utils

from avatar.sharing import VIDEO_NAME, Share, ShareRegistry

# Shared pages are for people, not for search engines, and say nothing of where they came from.
PRIVATE_HEADERS = {
    "X-Robots-Tag": "noindex, nofollow",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
PAGE_POLICY = (
    "default-src 'self'; script-src 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'"
)
DOWNLOAD_NAME = "talking-photo.mp4"
GONE_TITLE = "This link has expired or does not exist"
GONE_TEXT = (
    "Shared videos and review pages are kept for {lifetime} after they are made, then deleted for good. "
    "Please ask the person who sent you this link to make it again and send you a new link."
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; background: #fafafa; color: #222; line-height: 1.45; }
main { max-width: 40rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.4rem; margin: .3rem 0 .8rem; }
video { width: 100%; aspect-ratio: 1; background: #000; display: block; border-radius: 8px; }
blockquote { margin: 1rem 0; padding: .6rem .9rem; border-left: 4px solid #f97316; background: white; }
a.button { display: inline-flex; align-items: center; min-height: 44px; padding: 0 1.2rem; border-radius: 8px;
  background: #f97316; color: white; font-weight: 600; text-decoration: none; }
.note { color: #555; font-size: .95rem; }
"""
# Shows the expiry in the visitor's own time zone (the server's words, in UTC, stay if scripts are off).
LOCAL_TIME = """<script>
document.querySelectorAll("time[datetime]").forEach((node) => {
  const when = new Date(node.getAttribute("datetime"));
  if (!isNaN(when)) node.textContent = when.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
});
</script>"""


def page_url(request: gr.Request | None, share: Share) -> str:
    """The link to pass on: absolute, with the page's root as Gradio builds its own file links from it.

    Behind a proxy (a Hugging Face Space) that is the public host the browser used; with no
    request at hand, the link is relative to the page.
    """
    path = share.path
    inner = getattr(request, "request", None) if request is not None else None
    if inner is None:
        return path
    try:
        route = route_utils.get_api_call_path(inner)
    except ValueError:
        route = ""
    root = route_utils.get_root_url(inner, route, getattr(inner.app, "root_path", None) or None)
    return f"{root}/{path}"


def expiry_words(share: Share, now: float) -> str:
    """'until <time>14:05 UTC on 3 May 2026</time> (about 59 minutes from now)', as HTML."""
    when = datetime.fromtimestamp(share.expires, timezone.utc)
    minutes = max(1, round((share.expires - now) / 60))
    left = f"{minutes} minutes" if minutes < 120 else f"{minutes / 60:.0f} hours"
    stamp = f"{when:%H:%M} UTC on {when.day} {when:%B %Y}"
    return f'until <time datetime="{when.isoformat()}">{stamp}</time> (about {left} from now)'


def video_page(share: Share, video_bytes: int, now: float) -> str:
    """The page of a shared video: the video, the words spoken, who made it, a download button, the expiry."""
    track = (
        '<track kind="captions" src="captions.vtt" srclang="en" label="Captions" default>' if share.captions else ""
    )
    size = f"{video_bytes / 1_000_000:.1f} MB"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>A talking photo</title><style>{STYLE}</style></head>
<body><main>
<h1>A talking photo</h1>
<video id="video" src="{VIDEO_NAME}" controls playsinline preload="metadata">{track}</video>
<blockquote id="spoken">{html.escape(share.text)}</blockquote>
<p id="made-by">Spoken by <b>{html.escape(share.voice)}</b>, animated by <b>{html.escape(share.engine)}</b>.</p>
<p><a class="button" id="download" href="{VIDEO_NAME}" download="{DOWNLOAD_NAME}">Download the video ({size})</a></p>
<p class="note" id="expiry">This link works {expiry_words(share, now)}; then the video is deleted.</p>
</main>{LOCAL_TIME}</body></html>
"""


def review_page(share: Share, page: str, now: float) -> str:
    """A trial's review page as the bundle wrote it, with a line on top: until when it works, and the zip."""
    zip_name = html.escape(share.files[-1])
    banner = (
        '<p id="expiry" style="background:#fff3e0;padding:.6em .9em;border-radius:6px">'
        f"This review page works {expiry_words(share, now)}; then it is deleted. "
        f'<a href="{zip_name}" download>Download everything (zip)</a> to keep it.</p>'
    )
    opened = page.find("<body>")
    at = opened + len("<body>") if opened >= 0 else 0
    return page[:at] + banner + page[at:] + LOCAL_TIME


def gone_page(lifetime: str) -> HTMLResponse:
    """The plain 404 page for an expired, unknown or malformed link; shares last `lifetime` ('an hour')."""
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{GONE_TITLE}</title><style>{STYLE}</style></head>
<body><main><h1>{GONE_TITLE}</h1><p>{GONE_TEXT.format(lifetime=html.escape(lifetime))}</p></main></body></html>
"""
    return HTMLResponse(body, status_code=404, headers={**PRIVATE_HEADERS, "Cache-Control": "no-store"})


def share_routes(shares: ShareRegistry) -> list[APIRoute]:
    """`/share/<id>/` (the page), `/share/<id>/<file>` (its files, with ranges) and `/share/<id>` (to the page)."""

    def page_headers() -> dict[str, str]:
        return {**PRIVATE_HEADERS, "Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-cache"}

    def to_page(share_id: str) -> Response:
        if shares.get(share_id) is None:
            return gone_page(shares.lifetime)
        # Relative, so that the prefix in front of /share/ (if any) is kept.
        return RedirectResponse(f"{share_id}/", status_code=307, headers=PRIVATE_HEADERS)

    def show_page(share_id: str) -> Response:
        share = shares.get(share_id)
        if share is None:
            return gone_page(shares.lifetime)
        now = time.time()
        if share.kind == "review":
            page = shares.file(share, share.page)
            body = review_page(share, page.read_text(), now) if page is not None else None
        else:
            video = shares.file(share, VIDEO_NAME)
            body = video_page(share, video.stat().st_size, now) if video is not None else None
        return HTMLResponse(body, headers=page_headers()) if body is not None else gone_page(shares.lifetime)

    def send_file(share_id: str, name: str, request: Request) -> Response:
        share = shares.get(share_id)
        if share is not None and name == share.page:
            return show_page(share_id)
        path = shares.file(share, name) if share is not None else None
        if path is None:
            return gone_page(shares.lifetime)
        left = max(0, int(share.expires - time.time()))
        headers = {**PRIVATE_HEADERS, "Cache-Control": f"private, max-age={left}"}
        return FileResponse(path, headers=headers)

    methods = ["GET", "HEAD"]
    return [
        APIRoute("/share/{share_id}", to_page, methods=methods, include_in_schema=False),
        APIRoute("/share/{share_id}/", show_page, methods=methods, include_in_schema=False),
        APIRoute("/share/{share_id}/{name:path}", send_file, methods=methods, include_in_schema=False),
    ]
