// The page's "Listen" button: the microphone, classified live.
//
// An AudioWorklet hands the microphone's samples (mixed to mono) to a ring buffer holding the model's
// clip length (GET /api/health: clip_seconds). Every hop the page encodes what the buffer holds as a
// 16-bit PCM WAV and posts it to /api/listen; a hop that comes while the previous answer is still
// awaited is dropped and counted. The answer's top_k[0] is the current class (the server's `unknown`
// rule puts an "unknown" entry first); each answer is a cell of the last minute's timeline, newest on
// the right, unknown in grey. Uses the page's el(), pct() and scoreRows().
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const TIMELINE_S = 60;
  const UNKNOWN = "unknown";
  const PALETTE = ["#2f6db5", "#d9822b", "#2e9e5b", "#b5479e", "#c23b3b", "#6b5bc2", "#1f9aa8", "#8a6d1f",
                   "#5b8a2e", "#c25b7a"];
  const TAP = `class Tap extends AudioWorkletProcessor {
    process(inputs) {
      const channels = inputs[0];
      if (channels.length) {
        const mono = new Float32Array(channels[0].length);
        for (const ch of channels) for (let i = 0; i < mono.length; i++) mono[i] += ch[i] / channels.length;
        this.port.postMessage(mono, [mono.buffer]);
      }
      return true;
    }
  }
  registerProcessor("esclab-tap", Tap);`;

  const health = fetch("/api/health").then((r) => r.json());
  let session = null;  // {ctx, stream, ring, hopS, timer, inFlight, dropped}
  let answers = [];  // {t (ms), label, score}
  const colours = new Map();

  class Ring {
    constructor(size) { this.data = new Float32Array(size); this.pos = 0; this.filled = 0; }

    push(chunk) {
      const n = this.data.length;
      for (let i = 0; i < chunk.length; i++) {
        this.data[this.pos] = chunk[i];
        this.pos = (this.pos + 1) % n;
      }
      this.filled = Math.min(this.filled + chunk.length, n);
    }

    last() {  // what it holds, oldest first
      const n = this.data.length, start = (this.pos - this.filled + n) % n;
      const out = new Float32Array(this.filled);
      for (let i = 0; i < this.filled; i++) out[i] = this.data[(start + i) % n];
      return out;
    }
  }

  function wav(samples, rate) {
    const view = new DataView(new ArrayBuffer(44 + 2 * samples.length));
    const text = (at, s) => { for (let i = 0; i < s.length; i++) view.setUint8(at + i, s.charCodeAt(i)); };
    text(0, "RIFF"); view.setUint32(4, 36 + 2 * samples.length, true); text(8, "WAVE");
    text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
    view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true); view.setUint16(32, 2, true);
    view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, 2 * samples.length, true);
    samples.forEach((x, i) => view.setInt16(44 + 2 * i, Math.round(32767 * Math.max(-1, Math.min(1, x))), true));
    return new Blob([view], { type: "audio/wav" });
  }

  function micMessage(err) {
    switch (err.name) {
      case "NotAllowedError":
      case "SecurityError":
        return "Microphone access was refused. Allow this page to use the microphone (the icon in the " +
               "address bar or the site settings), then press Listen again.";
      case "NotFoundError":
      case "OverconstrainedError":
        return "No microphone was found. Connect one and press Listen again.";
      case "NotReadableError":
        return "The microphone could not be opened: another program may be using it.";
      default:
        return `The microphone could not be opened: ${err.name}: ${err.message}`;
    }
  }

  function showError(message) {
    $("listen-error").textContent = message;
    $("listen-error").style.display = message ? "block" : "none";
  }

  function hopSeconds() {
    const hop = Number($("hop").value);
    return Number.isFinite(hop) && hop >= 0.25 && hop <= 10 ? hop : 1;
  }

  async function statePlan() {
    const h = await health;
    $("listen-status").textContent = `Every ${hopSeconds()} s the page classifies the last ${h.clip_seconds} s ` +
      "heard (the model's clip). The audio is not kept.";
  }

  function colour(label) {
    if (!colours.has(label)) colours.set(label, PALETTE[colours.size % PALETTE.length]);
    return colours.get(label);
  }

  function drawTimeline(hopS) {
    const now = Date.now(), span = TIMELINE_S * 1000;
    answers = answers.filter((a) => now - a.t < span);
    const at = (t) => `${(100 * (now - t)) / span}%`;
    const width = (ms) => `${(100 * ms) / span}%`;
    const nodes = answers.map((a) => {
      const cell = el("div", undefined, a.label === UNKNOWN ? "cell unknown" : "cell");
      cell.style.right = at(a.t);
      cell.style.width = width(hopS * 1000);
      if (a.label !== UNKNOWN) cell.style.background = colour(a.label);
      cell.title = `${a.label} ${pct(a.score)}, ${((now - a.t) / 1000).toFixed(0)} s ago`;
      return cell;
    });
    for (let i = 0; i < answers.length; i++) {  // one label over each run of the same class
      let j = i;
      while (j + 1 < answers.length && answers[j + 1].label === answers[i].label) j++;
      const name = el("span", answers[i].label, "run");
      name.style.right = at(answers[j].t);
      name.style.width = width(answers[j].t - answers[i].t + hopS * 1000);
      nodes.push(name);
      i = j;
    }
    $("timeline").replaceChildren(...nodes);
  }

  function show(body, t, hopS) {
    const best = body.top_k[0];
    $("live-top").replaceChildren(el("b", best.label), " ", el("span", pct(best.score)));
    $("live-top").classList.toggle("unknown", best.label === UNKNOWN);
    $("live-top-k").replaceChildren(...scoreRows(body.top_k));
    answers.push({ t, label: best.label, score: best.score });
    drawTimeline(hopS);
    $("live-results").hidden = false;
  }

  function tellDropped(s) {
    const dropped = s.dropped ? ` · ${s.dropped} hop${s.dropped > 1 ? "s" : ""} dropped (an answer was late)` : "";
    health.then((h) => {
      if (session === s) {
        $("listen-status").textContent = `Listening: every ${s.hopS} s, the last ${h.clip_seconds} s.` +
          ` The audio is not kept${dropped}.`;
      }
    });
  }

  async function hop(s) {
    if (session !== s) return;
    drawTimeline(s.hopS);
    if (s.inFlight) {
      s.dropped += 1;
      tellDropped(s);
      return;
    }
    if (!s.ring.filled) return;
    s.inFlight = true;
    const t = Date.now();
    try {
      const res = await fetch("/api/listen?top_k=5", { method: "POST", headers: { "Content-Type": "audio/wav" },
                                                       body: wav(s.ring.last(), s.ctx.sampleRate) });
      const body = await res.json().catch(() => ({ detail: res.statusText }));
      if (session !== s) return;
      if (!res.ok) {
        const detail = Array.isArray(body.detail) ? body.detail.map((d) => d.msg).join("; ") : body.detail;
        showError(`Error ${res.status}: ${detail}`);
        return;
      }
      showError("");
      show(body, t, s.hopS);
    } catch (err) {
      if (session === s) showError(`The server could not be reached: ${err}`);
    } finally {
      s.inFlight = false;
    }
  }

  async function audioGraph(stream, rate) {
    // the model's rate if the browser resamples the microphone to it, else the context's own
    for (const options of [{ sampleRate: rate }, {}]) {
      const ctx = new AudioContext(options);
      try {
        return { ctx, source: ctx.createMediaStreamSource(stream) };
      } catch (err) {
        await ctx.close();
        if (!options.sampleRate) throw err;
      }
    }
  }

  async function start() {
    showError("");
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      showError("This browser gives pages the microphone only over https or on localhost / 127.0.0.1: " +
                "open the page at such an address.");
      return;
    }
    $("listen").disabled = true;
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia(
        { audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
    } catch (err) {
      showError(micMessage(err));
      $("listen").disabled = false;
      return;
    }
    try {
      const h = await health;
      const { ctx, source } = await audioGraph(stream, h.sample_rate);
      const url = URL.createObjectURL(new Blob([TAP], { type: "text/javascript" }));
      await ctx.audioWorklet.addModule(url);
      URL.revokeObjectURL(url);
      const tap = new AudioWorkletNode(ctx, "esclab-tap", { numberOfInputs: 1, numberOfOutputs: 0 });
      const s = { ctx, stream, ring: new Ring(Math.round(h.clip_seconds * ctx.sampleRate)), hopS: hopSeconds(),
                  inFlight: false, dropped: 0 };
      tap.port.onmessage = (e) => s.ring.push(e.data);
      source.connect(tap);
      await ctx.resume();
      s.timer = setInterval(() => hop(s), s.hopS * 1000);
      stream.getAudioTracks().forEach((track) => track.addEventListener("ended", () => {
        if (session === s) { stop(); showError("The microphone stopped (unplugged or taken away)."); }
      }));
      session = s;
      tellDropped(s);
      $("listen").textContent = "Stop";
      $("listen").setAttribute("aria-pressed", "true");
      $("hop").disabled = true;
    } catch (err) {
      stream.getTracks().forEach((track) => track.stop());
      showError(`Listening could not start: ${err}`);
    } finally {
      $("listen").disabled = false;
    }
  }

  function stop() {
    const s = session;
    session = null;
    clearInterval(s.timer);
    s.stream.getTracks().forEach((track) => track.stop());
    s.ctx.close();
    $("listen").textContent = "Listen";
    $("listen").setAttribute("aria-pressed", "false");
    $("hop").disabled = false;
    statePlan();
  }

  $("listen").addEventListener("click", () => (session ? stop() : start()));
  $("hop").addEventListener("change", statePlan);
  statePlan().catch(() => { $("listen-status").textContent = "model information unavailable"; });
})();
