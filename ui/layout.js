// The page's layout in motion (its shape is in ui/layout.css): a run's player is brought into view
// when Generate is pressed, Stop kept above it; on a phone, the crop preview starts folded away.
(() => {
  const PHONE = window.matchMedia("(max-width: 640px)");
  let runStarted = false;

  const motion = () => (window.matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth");

  const fullyVisible = (element) => {
    const box = element.getBoundingClientRect();
    return box.height > 0 && box.top >= 0 && box.bottom <= window.innerHeight;
  };

  // Generate and Stop at the top of the screen with the player under them, or, when the video is too tall
  // for that, the video's bottom at the screen's bottom; nothing moves while the video is in view.
  const showPlayer = () => {
    const buttons = document.querySelector("#run-buttons");
    const video = document.querySelector("#video video");
    if (!buttons || (video && fullyVisible(video))) return;
    const top = buttons.getBoundingClientRect().top;
    const bottom = video ? video.getBoundingClientRect().bottom : top;
    const shift = bottom - top <= window.innerHeight ? top : bottom - window.innerHeight;
    window.scrollBy({ top: shift, behavior: motion() });
  };

  document.addEventListener("click", (event) => {
    if (!event.target.closest || !event.target.closest("#generate")) return;
    runStarted = true;
    showPlayer();
  }, true);

  // The player grows as the run begins (the video arrives, then learns its size): until the first picture
  // shows, each step is followed, so the page is tall enough to scroll by then.
  const follow = (event) => {
    if (!runStarted || !(event.target instanceof HTMLVideoElement) || !event.target.closest("#video")) return;
    if (event.type === "playing") runStarted = false;
    showPlayer();
  };
  for (const type of ["loadedmetadata", "playing"]) document.addEventListener(type, follow, true);

  // The link the Share button gives is brought into view once it is there.
  document.addEventListener("click", (event) => {
    if (!event.target.closest || !event.target.closest("#share")) return;
    const asked = performance.now();
    const reveal = () => {
      const box = document.querySelector("#share-link textarea, #share-link input");
      if (box && box.value && box.offsetParent !== null) box.scrollIntoView({ block: "nearest", behavior: motion() });
      else if (performance.now() - asked < 10000) requestAnimationFrame(reveal);
    };
    requestAnimationFrame(reveal);
  }, true);

  // On a phone the crop preview starts folded. Gradio may open it again while the page settles, so it is
  // folded whenever it opens, until the visitor taps it (or the page has long settled).
  let tapped = false;
  document.addEventListener("click", (event) => {
    if (event.isTrusted && event.target.closest && event.target.closest("#crop-fold .label-wrap")) tapped = true;
  }, true);
  const fold = () => {
    if (tapped || !PHONE.matches) return;
    document.querySelector("#crop-fold button.label-wrap.open")?.click();
  };
  const watcher = new MutationObserver(fold);
  watcher.observe(document.documentElement, { childList: true, subtree: true, attributes: true, attributeFilter: ["class"] });
  setTimeout(() => watcher.disconnect(), 20000);
  fold();
})();
