// The Live tab's microphone: what it hears goes to the server every tenth of a second, as 16-bit PCM
// at the browser's own rate, to the address the live player names (data-live-microphone); an answer
// other than 204 means the session is over. (Gradio's streaming audio would upload a WAV file and
// queue an event for every piece; one small POST each is all a live face needs.)
//
// The audio context is made on the Start click (browsers let sound start only from a gesture); the
// microphone is asked for once the session has its place, so nothing is recorded while it waits in
// line. Every end (Stop, a refused or lost microphone, leaving the page) is told to the server, which
// says in the status line what happened. window.__liveMicrophone keeps when each piece was captured,
// for bench/live_latency.py.
(() => {
  const SEND_EVERY_MS = 100;
  // No answer for this long: the server has ended the session (it stops waiting after 3 s without sound).
  const GIVE_UP_MS = 8000;
  const CAPTURE = `registerProcessor("live-capture", class extends AudioWorkletProcessor {
    process(inputs) { const channel = inputs[0][0]; if (channel) this.port.postMessage(channel.slice(0)); return true; }
  });`;

  // [samples sent so far, performance.now() when the last of them came], and the device's latency (ms) as reported.
  const log = { rate: 0, captured: [], inputLatency: 0 };
  window.__liveMicrophone = log;
  const used = new Set(); // addresses already fed: a finished session's player stays on the page
  let session = null;

  const prepare = () => {
    if (session && !session.ending) return; // one session at a time (the page runs one Start at a time too)
    const context = new AudioContext();
    const module = URL.createObjectURL(new Blob([CAPTURE], { type: "text/javascript" }));
    session = { context, ready: context.audioWorklet.addModule(module), address: null, stream: null, timer: null,
                pieces: [], samples: 0, lastCapture: 0, sending: false, ending: null, answeredAt: 0 };
  };

  const reason = (error) => {
    const name = error && error.name;
    if (name === "NotAllowedError" || name === "SecurityError") return "denied";
    if (name === "NotFoundError" || name === "OverconstrainedError") return "missing";
    return "failed";
  };

  const start = async (current, address) => {
    current.address = address;
    current.answeredAt = performance.now();
    used.add(address);
    if (current.ending) return tell(current); // stopped while it waited in line
    try {
      if (!navigator.mediaDevices) throw new Error("no microphone access on this page (not HTTPS?)");
      current.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      return finish(current, reason(error));
    }
    if (current.ending) return finish(current, current.ending);
    try {
      await current.ready;
      await current.context.resume();
      const source = current.context.createMediaStreamSource(current.stream);
      const node = new AudioWorkletNode(current.context, "live-capture");
      node.port.onmessage = (message) => {
        if (current.ending) return;
        current.pieces.push(message.data);
        current.lastCapture = performance.now();
      };
      source.connect(node).connect(current.context.destination); // it outputs silence; connected, it keeps running
    } catch (error) {
      return finish(current, "failed");
    }
    current.stream.getAudioTracks().forEach((track) => track.addEventListener("ended", () => finish(current, "lost")));
    Object.assign(log, { rate: current.context.sampleRate, captured: [] });
    current.timer = setInterval(() => send(current), SEND_EVERY_MS);
  };

  const inputLatency = (stream) => {
    const [track] = stream ? stream.getAudioTracks() : [];
    if (!track) return 0;
    const { latency = 0 } = track.getSettings();
    return latency * 1000 + ((track.stats && track.stats.averageLatency) || 0);
  };

  const pcm = (pieces) => {
    const out = new Int16Array(pieces.reduce((sum, piece) => sum + piece.length, 0));
    let at = 0;
    for (const piece of pieces) {
      for (let i = 0; i < piece.length; i += 1) out[at + i] = Math.max(-1, Math.min(1, piece[i])) * 32767;
      at += piece.length;
    }
    return out;
  };

  const send = async (current) => {
    if (current.sending || current.address === null) return;
    if (performance.now() - current.answeredAt > GIVE_UP_MS) return close(current);
    const { pieces, ending, lastCapture } = current;
    if (!pieces.length && !ending) return;
    current.pieces = [];
    current.sending = true;
    const query = `rate=${current.context.sampleRate}` + (ending ? `&end=${ending}` : "");
    try {
      const response = await fetch(`${current.address}?${query}`, { method: "POST", body: pcm(pieces), keepalive: !!ending });
      current.answeredAt = performance.now();
      current.samples += pieces.reduce((sum, piece) => sum + piece.length, 0);
      if (pieces.length) log.captured.push([current.samples, lastCapture]);
      log.inputLatency = inputLatency(current.stream);
      if (response.status !== 204 || ending) close(current);
    } catch (error) {
      current.pieces = pieces.concat(current.pieces); // a network hiccup: sent again with the next piece
    } finally {
      current.sending = false;
    }
  };

  // The session ends here for `why`; the server is told once it has an address.
  const finish = (current, why) => {
    if (current.ending) return;
    current.ending = why;
    if (current.stream) current.stream.getTracks().forEach((track) => track.stop());
    if (current.address !== null) tell(current);
    else if (current !== session) close(current); // never started: nothing to tell
  };

  const tell = (current) => {
    clearInterval(current.timer);
    if (current.sending) setTimeout(() => tell(current), 20);
    else send(current);
  };

  const close = (current) => {
    clearInterval(current.timer);
    if (current.stream) current.stream.getTracks().forEach((track) => track.stop());
    current.context.close().catch(() => {});
    current.address = null;
    current.ending = current.ending || "stopped";
    if (session === current) session = null;
  };

  document.addEventListener("click", (event) => {
    if (!event.target.closest) return;
    if (event.target.closest("#live-start")) prepare();
    else if (event.target.closest("#live-stop") && session) finish(session, "stopped");
  }, true);

  window.addEventListener("pagehide", () => {
    if (session && session.address !== null && !session.ending) navigator.sendBeacon(`${session.address}?end=left`);
  });

  new MutationObserver(() => {
    if (!session || session.address !== null) return;
    const player = [...document.querySelectorAll("[data-live-microphone]")]
      .find((element) => !used.has(element.dataset.liveMicrophone));
    if (player) start(session, player.dataset.liveMicrophone);
  }).observe(document.documentElement, { childList: true, subtree: true });
})();
