// Plays a run's live fragmented MP4 through Media Source Extensions: every fragment is
// appended the moment it arrives, so the first picture shows as soon as the encoder has it.
// Safari on an iPhone (iOS 17.1 and later) has only ManagedMediaSource, which works the same once
// remote playback (AirPlay) is turned off; a browser with neither is told so in one sentence.
// A live session's player (data-live-edge: the seconds its engine draws at once) starts at the first
// fragment and keeps near the newest frame, since every moment behind it is a moment the face lags the
// visitor; it lets an engine's whole chunk pile up rather than skip its frames.
(() => {
  const START_SECONDS = 0.3; // buffered before playback starts, so a slow second fragment does not stall it
  // A live session's player: slightly faster while more than LIVE_AHEAD is buffered, and a jump to the
  // newest frames when more than LIVE_JUMP is.
  const LIVE_AHEAD = 0.1;
  const LIVE_JUMP = 0.6;
  const LIVE_CATCH_UP_RATE = 1.25;
  const UNSUPPORTED = "This browser cannot play the video while it is being made; " +
    "it can be downloaded below once it is finished.";

  const bufferedAhead = (video) =>
    video.buffered.length ? video.buffered.end(video.buffered.length - 1) - video.currentTime : 0;

  const followLiveEdge = (video, chunk) => {
    const ahead = bufferedAhead(video);
    if (ahead > LIVE_JUMP + chunk) video.currentTime = video.buffered.end(video.buffered.length - 1) - LIVE_AHEAD / 2;
    video.playbackRate = ahead > LIVE_AHEAD + chunk ? LIVE_CATCH_UP_RATE : 1;
  };

  const sayUnsupported = (video) => {
    const sentence = document.createElement("p");
    sentence.className = "live-unsupported";
    sentence.textContent = UNSUPPORTED;
    video.replaceWith(sentence);
  };

  const attach = (video) => {
    if (video.dataset.liveAttached) return;
    video.dataset.liveAttached = "1";
    const source = video.dataset.liveSrc;
    const type = video.dataset.liveType;
    const live = video.dataset.liveEdge !== undefined;
    const chunk = Number(video.dataset.liveEdge) || 0;
    const Source = window.MediaSource || window.ManagedMediaSource;
    if (!Source || !Source.isTypeSupported(type)) return sayUnsupported(video);
    if (Source !== window.MediaSource) video.disableRemotePlayback = true; // ManagedMediaSource opens only then
    const media = new Source();
    video.src = URL.createObjectURL(media);
    media.addEventListener("sourceopen", async () => {
      const buffer = media.addSourceBuffer(type);
      const pending = [];
      let finished = false;
      const pump = () => {
        if (buffer.updating || media.readyState !== "open") return;
        if (pending.length) buffer.appendBuffer(pending.shift());
        else if (finished) media.endOfStream();
      };
      buffer.addEventListener("updateend", () => {
        const enough = live ? video.buffered.length > 0 : bufferedAhead(video) >= START_SECONDS;
        if (video.paused && !video.ended && (finished || enough)) video.play().catch(() => {});
        if (live && !finished) followLiveEdge(video, chunk);
        pump();
      });
      const response = await fetch(source, { cache: "no-store" });
      const reader = response.body.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        pending.push(value);
        pump();
      }
      finished = true;
      video.playbackRate = 1;
      pump();
    }, { once: true });
  };

  new MutationObserver(() => document.querySelectorAll("video[data-live-src]").forEach(attach))
    .observe(document.documentElement, { childList: true, subtree: true });
})();
