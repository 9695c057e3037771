// Captions under the talking video: the line being said, with the word being said marked.
// The run sends its cues into #captions as the sentences are spoken (before their frames), and
// what is shown follows the video's own clock (currentTime), not the wall clock: it stays in
// step through stalls, and follows a seek in the finished video. The switch is remembered.
(() => {
  const STORE = "talking-photo-captions";
  const state = { enabled: true, cues: [], source: null, time: null, text: "", spoken: "" };
  try { state.enabled = localStorage.getItem(STORE) !== "off"; } catch (_) { /* private browsing */ }
  window.__captions = state;

  const style = document.createElement("style");
  style.textContent = `
    .live-captions { display: flex; align-items: center; gap: .75em; margin-top: .25em; }
    .live-captions .caption-line { flex: 1; margin: 0; min-height: 1.6em; font-size: 1.15em; line-height: 1.6em;
      text-align: center; }
    .live-captions .caption-line span { padding: 0 .08em; border-radius: .2em; }
    .live-captions .caption-line .spoken { background: #ffd400; color: #000; }
    .live-captions .caption-switch { white-space: nowrap; font-size: .9em; cursor: pointer; }`;
  document.head.appendChild(style);

  const cuesOf = (box) => {
    const raw = box.dataset.cues || "[]";
    if (raw !== state.source) {
      state.source = raw;
      try { state.cues = JSON.parse(raw); } catch (_) { state.cues = []; }
    }
    return state.cues;
  };

  const cueAt = (cues, time) => cues.find((cue) => cue.start <= time && time < cue.end) || null;

  // The line of `cue` with the word said at `time` marked (none in a pause).
  const show = (line, cue, time) => {
    const spoken = cue ? cue.words.findIndex(([, start, end]) => start <= time && time < end) : -1;
    const key = cue ? `${cue.start}:${spoken}` : "";
    const words = cue ? cue.words.length : 0;
    if (line.dataset.key === key && line.children.length === words) return;
    line.dataset.key = key;
    line.replaceChildren();
    (cue ? cue.words : []).forEach(([text], index) => {
      if (index) line.append(" ");
      const word = document.createElement("span");
      word.textContent = text;
      if (index === spoken) word.className = "spoken";
      line.append(word);
    });
    state.text = cue ? cue.words.map(([text]) => text).join(" ") : "";
    state.spoken = spoken >= 0 ? cue.words[spoken][0] : "";
  };

  const render = () => {
    const box = document.querySelector("#captions .live-captions");
    if (!box) return;
    const video = document.querySelector("#video video");
    const line = box.querySelector(".caption-line");
    const toggle = box.querySelector(".caption-toggle");
    if (toggle && toggle.checked !== state.enabled) toggle.checked = state.enabled;
    line.hidden = !state.enabled;
    const time = video ? video.currentTime : 0;
    show(line, video && state.enabled ? cueAt(cuesOf(box), time) : null, time);
    line.dataset.time = String(time);
    state.time = time;
  };

  const everyFrame = () => {
    render();
    requestAnimationFrame(everyFrame);
  };
  requestAnimationFrame(everyFrame);
  // New cues replace the box's contents: fill the new line before the page is painted.
  new MutationObserver(render).observe(document.documentElement, { childList: true, subtree: true });

  document.addEventListener("change", (event) => {
    if (!event.target.classList || !event.target.classList.contains("caption-toggle")) return;
    state.enabled = event.target.checked;
    try { localStorage.setItem(STORE, state.enabled ? "on" : "off"); } catch (_) { /* private browsing */ }
    render();
  });
})();
