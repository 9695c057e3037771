// Plays a run's live fragmented MP4 through Media Source Extensions: every fragment is
// appended the moment it arrives, so the first picture shows as soon as the encoder has it.
(() => {
  const START_SECONDS = 0.3; // buffered before playback starts, so a slow second fragment does not stall it

  const bufferedAhead = (video) =>
    video.buffered.length ? video.buffered.end(video.buffered.length - 1) - video.currentTime : 0;

  const attach = (video) => {
    if (video.dataset.liveAttached) return;
    video.dataset.liveAttached = "1";
    const source = video.dataset.liveSrc;
    const type = video.dataset.liveType;
    if (!window.MediaSource || !MediaSource.isTypeSupported(type)) {
      video.src = source; // progressive download still plays, only later
      return;
    }
    const media = new MediaSource();
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
        if (video.paused && !video.ended && (finished || bufferedAhead(video) >= START_SECONDS)) {
          video.play().catch(() => {});
        }
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
      pump();
    }, { once: true });
  };

  new MutationObserver(() => document.querySelectorAll("video[data-live-src]").forEach(attach))
    .observe(document.documentElement, { childList: true, subtree: true });
})();
