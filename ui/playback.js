// Measures playback in the visitor's own browser and shows it under the video:
// time from clicking Generate to the first picture on screen, and any stall after that.
(() => {
  const state = { clickedAt: null, firstPicture: null, stalls: 0, stallSeconds: 0, stalledAt: null, ended: false };
  window.__playback = state;

  const show = () => {
    const box = document.querySelector("#playback-stats");
    if (!box || state.firstPicture === null) return;
    const stalls = state.stalls === 0 ? "no stalls" :
      `${state.stalls} stall${state.stalls > 1 ? "s" : ""} (${state.stallSeconds.toFixed(2)} s in all)`;
    box.textContent = `First picture ${state.firstPicture.toFixed(2)} s after you clicked Generate · ${stalls}` +
      (state.ended ? "" : " so far");
  };

  const inPlayer = (target) => target instanceof HTMLVideoElement && target.closest("#video");

  document.addEventListener("click", (event) => {
    if (!event.target.closest || !event.target.closest("#generate")) return;
    Object.assign(state, { clickedAt: performance.now(), firstPicture: null, stalls: 0, stallSeconds: 0,
                           stalledAt: null, ended: false });
    const box = document.querySelector("#playback-stats");
    if (box) box.textContent = "";
  }, true);

  const firstFrame = (video) => {
    if (state.clickedAt === null || state.firstPicture !== null) return;
    const mark = () => {
      if (state.firstPicture === null) {
        state.firstPicture = (performance.now() - state.clickedAt) / 1000;
        show();
      }
    };
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(mark); else mark();
  };

  document.addEventListener("playing", (event) => {
    if (!inPlayer(event.target)) return;
    firstFrame(event.target);
    if (state.stalledAt !== null) {
      state.stallSeconds += (performance.now() - state.stalledAt) / 1000;
      state.stalledAt = null;
      show();
    }
  }, true);

  document.addEventListener("waiting", (event) => {
    if (!inPlayer(event.target) || state.firstPicture === null || state.ended) return;
    if (state.stalledAt === null) {
      state.stalls += 1;
      state.stalledAt = performance.now();
    }
  }, true);

  document.addEventListener("ended", (event) => {
    if (!inPlayer(event.target)) return;
    state.ended = true;
    state.stalledAt = null;
    show();
  }, true);
})();
