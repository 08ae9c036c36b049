// The demo page: plain JavaScript, no libraries, no build step. It talks only to this service's JSON
// API (same origin). The API key, when one is needed, lives in `state.key` only: never in storage or
// cookies, so reloading the page forgets it.
"use strict";

(() => {
  const state = {
    key: null,
    models: [],                // GET /models summaries
    classNames: {},            // model name -> class names from its manifest
    samples: {},               // task -> GET /samples/{task}
    sampleInput: null,         // {task, pixels, label, className, index}: a loaded test image
    animation: null,           // the pendulum animation's timer
  };
  const $ = (id) => document.getElementById(id);
  const SVG_NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                   "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#7f7f7f"];
  const TRAINED_STEPS = 29;

  // ---------------------------------------------------------------------------------------------
  // The API: every call sends the key (if set); errors become readable messages.
  // ---------------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  function describeDetail(detail) {
    if (Array.isArray(detail)) {
      return detail.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("; ");
    }
    return String(detail);
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // A 503 with Retry-After (the model's queue or the stability lane is full, or the model is still
  // loading) is retried twice, after the wait the service asks for (at most 10 s).
  async function api(method, path, body, as = "json", retries = 2) {
    const headers = {};
    if (state.key) headers["X-API-Key"] = state.key;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, { method, headers,
                                     body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      throw new ApiError(0, `the service did not answer (${err.message})`);
    }
    const retryAfter = Number(response.headers.get("Retry-After"));
    if (response.status === 503 && retries > 0 && retryAfter > 0) {
      await sleep(1000 * Math.min(retryAfter, 10));
      return api(method, path, body, as, retries - 1);
    }
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = describeDetail((await response.json()).detail); } catch (_) { /* not JSON */ }
      if (response.status === 401) askForKey(detail);
      throw new ApiError(response.status, `${response.status}: ${detail}`);
    }
    return as === "blob" ? response.blob() : response.json();
  }

  function setStatus(id, text, isError = false) {
    const el = $(id);
    el.textContent = text;
    el.classList.toggle("error", isError);
  }

  // ---------------------------------------------------------------------------------------------
  // API key
  // ---------------------------------------------------------------------------------------------
  function askForKey(detail) {
    setStatus("key-status", `The service needs an API key (${detail}). Enter it above.`, true);
    $("api-key").focus();
  }

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("api-key").value.trim();
    state.key = value || null;
    $("api-key").value = "";
    setStatus("key-status", state.key ? `Key set (${state.key.length} characters), kept in this page's memory only.`
                                      : "No key set.");
    loadModels();
  });
  $("key-forget").addEventListener("click", () => {
    state.key = null;
    $("api-key").value = "";
    setStatus("key-status", "Key forgotten.");
  });

  // ---------------------------------------------------------------------------------------------
  // Models list (and the model pickers, which offer the ready models)
  // ---------------------------------------------------------------------------------------------
  function formatResult(task, metrics) {
    if (metrics.test_accuracy !== undefined) return `accuracy ${(100 * metrics.test_accuracy).toFixed(2)} %`;
    const parts = [];
    if (metrics.mse_rad2 !== undefined) parts.push(`MSE ${metrics.mse_rad2.toPrecision(3)} rad²`);
    if (metrics.paper_metric !== undefined) parts.push(`paper metric ${metrics.paper_metric.toFixed(1)}`);
    if (parts.length) return parts.join(", ");
    return Object.entries(metrics).map(([k, v]) => `${k} ${Number(v).toPrecision(4)}`).join(", ") || "–";
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function fillSelect(select, names, preferred) {
    const previous = select.value;
    select.replaceChildren(...names.map((name) => {
      const option = new Option(name, name);
      option.title = modelByName(name)?.description ?? "";      // the manifest's description, on hover
      return option;
    }));
    const keep = [previous, preferred].find((n) => names.includes(n));
    if (keep) select.value = keep;
  }

  async function loadModels() {
    setStatus("models-status", "Loading…");
    let list;
    try {
      list = (await api("GET", "/models")).models;
    } catch (err) {
      setStatus("models-status", `Could not list the models: ${err.message}`, true);
      return;
    }
    state.models = list;
    const body = $("models-table").querySelector("tbody");
    body.replaceChildren();
    for (const m of list) {
      const row = document.createElement("tr");
      const name = document.createElement("th");
      name.scope = "row";
      name.textContent = m.name;
      row.appendChild(name);
      cell(row, m.task ?? "–");
      cell(row, m.variant ?? "–");
      cell(row, m.parameters != null ? m.parameters.toLocaleString("en") : "–", "num");
      cell(row, formatResult(m.task, m.metrics || {}));
      const loadState = m.status === "ready"
        ? `ready${m.checksum_verified ? ", checksum verified" : ""}` : `unavailable: ${m.reason}`;
      cell(row, loadState, `state-${m.status}`);
      cell(row, m.device);
      cell(row, m.description ?? "–", "about");
      body.appendChild(row);
    }
    const ready = list.filter((m) => m.status === "ready");
    const loading = list.filter((m) => m.status !== "ready" && m.reason === "loading");
    setStatus("models-status", `${ready.length} of ${list.length} models ready` +
              (loading.length ? `; ${loading.length} still loading…` : "."));
    fillSelect($("classify-model"), ready.filter((m) => m.task === "mnist" || m.task === "cifar10")
      .map((m) => m.name), "mnist");
    fillSelect($("pendulum-model"), ready.filter((m) => m.task === "pendulum").map((m) => m.name), "pendulum");
    fillSelect($("stability-model"), ready.map((m) => m.name), "mnist");
    onClassifyModelChange();
    if (loading.length) setTimeout(loadModels, 2000);
  }
  $("models-refresh").addEventListener("click", loadModels);

  function modelByName(name) { return state.models.find((m) => m.name === name); }

  // ---------------------------------------------------------------------------------------------
  // Plots: small SVG line plots
  // ---------------------------------------------------------------------------------------------
  function svgEl(tag, attrs, parent) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (parent) parent.appendChild(el);
    return el;
  }

  function fmt(v) {
    if (v === 0) return "0";
    const a = Math.abs(v);
    if (a >= 1000 || a < 0.01) return v.toExponential(2);
    const s = v.toPrecision(3);
    return s.includes(".") ? s.replace(/\.?0+$/, "") : s;
  }

  // series: [{xs, ys, color, name, markers, dash}]; bands: [{x0, x1, color}] under the curves.
  function drawPlot(svg, { series, x, y, xlabel, ylabel, bands = [] }) {
    const W = 400, H = 180, L = 58, R = 8, T = series.length > 1 ? 24 : 10, B = 30;
    svg.replaceChildren();
    const sx = (v) => L + (W - L - R) * (x[1] === x[0] ? 0.5 : (v - x[0]) / (x[1] - x[0]));
    const sy = (v) => H - B - (H - T - B) * (y[1] === y[0] ? 0.5 : (v - y[0]) / (y[1] - y[0]));
    for (const band of bands) {
      svgEl("rect", { x: sx(band.x0), y: H - B - 8, width: Math.max(0.5, sx(band.x1) - sx(band.x0)),
                      height: 8, fill: band.color }, svg);
    }
    svgEl("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }, svg);
    svgEl("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }, svg);
    const text = (content, attrs) => { svgEl("text", attrs, svg).textContent = content; };
    text(fmt(y[1]), { x: L - 4, y: T + 8, "text-anchor": "end" });
    text(fmt(y[0]), { x: L - 4, y: H - B, "text-anchor": "end" });
    text(fmt(x[0]), { x: L, y: H - B + 13, "text-anchor": "middle" });
    text(fmt(x[1]), { x: W - R, y: H - B + 13, "text-anchor": "end" });
    text(xlabel, { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle" });
    text(ylabel, { x: 10, y: (T + H - B) / 2, "text-anchor": "middle",
                   transform: `rotate(-90 10 ${(T + H - B) / 2})` });
    let legendX = L;              // a legend above the plot area, one entry per series
    for (const s of series) {
      const points = s.ys.map((v, i) => `${sx(s.xs[i]).toFixed(1)},${sy(v).toFixed(1)}`).join(" ");
      const line = svgEl("polyline", { points, class: "series", stroke: s.color }, svg);
      line.dataset.name = s.name;
      line.dataset.points = String(s.ys.length);
      if (s.dash) line.setAttribute("stroke-dasharray", s.dash);
      if (s.markers) {
        s.ys.forEach((v, i) => svgEl("circle", { cx: sx(s.xs[i]), cy: sy(v), r: 2.2, fill: s.color,
                                                  class: "point" }, svg));
      }
      if (series.length > 1) {
        svgEl("rect", { x: legendX, y: 8, width: 12, height: 3, fill: s.color }, svg);
        text(s.name, { x: legendX + 16, y: 13 });
        legendX += 100;
      }
    }
    const cursor = svgEl("line", { x1: 0, y1: T, x2: 0, y2: H - B, stroke: "#888",
                                   "stroke-dasharray": "3 3", visibility: "hidden", class: "cursor" }, svg);
    return (v) => {           // moves the time cursor to x = v
      cursor.setAttribute("x1", sx(v));
      cursor.setAttribute("x2", sx(v));
      cursor.setAttribute("visibility", "visible");
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Classify: drawing (pointer and keyboard), MNIST-style preprocessing, test images
  // ---------------------------------------------------------------------------------------------
  const canvas = $("digit-canvas");
  const ink = document.createElement("canvas");        // the drawing itself, without the pen cursor
  ink.width = canvas.width;
  ink.height = canvas.height;
  const inkCtx = ink.getContext("2d", { willReadFrequently: true });
  const view = canvas.getContext("2d");
  const pen = { x: canvas.width / 2, y: canvas.height / 4, down: false, drawing: false, last: null };
  const PEN_WIDTH = 22;

  function clearInk() {
    inkCtx.fillStyle = "#000";
    inkCtx.fillRect(0, 0, ink.width, ink.height);
    state.sampleInput = null;
    render();
  }

  function render() {
    view.drawImage(ink, 0, 0);
    if (document.activeElement === canvas) {         // keyboard pen: a ring where it is
      view.strokeStyle = pen.down ? "#ffb000" : "#6cf";
      view.lineWidth = 2;
      view.beginPath();
      view.arc(pen.x, pen.y, PEN_WIDTH / 2, 0, 2 * Math.PI);
      view.stroke();
    }
  }

  function stroke(from, to) {
    state.sampleInput = null;             // drawing over a test image makes it a drawing
    inkCtx.strokeStyle = "#fff";
    inkCtx.lineWidth = PEN_WIDTH;
    inkCtx.lineCap = "round";
    inkCtx.lineJoin = "round";
    inkCtx.beginPath();
    inkCtx.moveTo(from.x, from.y);
    inkCtx.lineTo(to.x, to.y);
    inkCtx.stroke();
    render();
  }

  function canvasPoint(event) {
    const rect = canvas.getBoundingClientRect();
    return { x: (event.clientX - rect.left) * canvas.width / rect.width,
             y: (event.clientY - rect.top) * canvas.height / rect.height };
  }

  canvas.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    pen.drawing = true;
    pen.last = canvasPoint(event);
    stroke(pen.last, pen.last);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!pen.drawing) return;
    const point = canvasPoint(event);
    stroke(pen.last, point);
    pen.last = point;
  });
  for (const type of ["pointerup", "pointercancel"]) {
    canvas.addEventListener(type, () => { pen.drawing = false; });
  }
  canvas.addEventListener("keydown", (event) => {
    const moves = { ArrowUp: [0, -1], ArrowDown: [0, 1], ArrowLeft: [-1, 0], ArrowRight: [1, 0] };
    if (event.key === " " || event.key === "Enter") {
      pen.down = !pen.down;
      $("pen-state").textContent = pen.down ? "down (drawing)" : "up";
      if (pen.down) stroke(pen, pen);
    } else if (moves[event.key]) {
      const step = event.shiftKey ? 4 : 12;
      const from = { x: pen.x, y: pen.y };
      pen.x = Math.min(canvas.width, Math.max(0, pen.x + step * moves[event.key][0]));
      pen.y = Math.min(canvas.height, Math.max(0, pen.y + step * moves[event.key][1]));
      if (pen.down) stroke(from, pen); else render();
    } else {
      return;
    }
    event.preventDefault();
  });
  canvas.addEventListener("focus", render);
  canvas.addEventListener("blur", render);
  $("digit-clear").addEventListener("click", () => {
    clearInk();
    showPreview(null);
  });

  // The drawing as MNIST presents digits: the ink's bounding box scaled to fit 20×20 (area average),
  // placed in a 28×28 image with its centre of mass at the centre. Returns 784 values 0–255, or null.
  function drawingAsMnist() {
    const { width: W, height: H } = ink;
    const rgba = inkCtx.getImageData(0, 0, W, H).data;
    let x0 = W, x1 = -1, y0 = H, y1 = -1;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        if (rgba[4 * (y * W + x)] > 0) {
          x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
        }
      }
    }
    if (x1 < 0) return null;
    const scale = 20 / Math.max(x1 - x0 + 1, y1 - y0 + 1);
    const bw = Math.max(1, Math.round((x1 - x0 + 1) * scale));
    const bh = Math.max(1, Math.round((y1 - y0 + 1) * scale));
    const sum = new Float64Array(bw * bh), count = new Float64Array(bw * bh);
    for (let y = y0; y <= y1; y++) {
      const ty = Math.min(bh - 1, Math.floor((y - y0) * scale));
      for (let x = x0; x <= x1; x++) {
        const i = ty * bw + Math.min(bw - 1, Math.floor((x - x0) * scale));
        sum[i] += rgba[4 * (y * W + x)];
        count[i] += 1;
      }
    }
    let mass = 0, mx = 0, my = 0;
    const box = sum.map((s, i) => s / count[i]);
    box.forEach((v, i) => { mass += v; mx += v * (i % bw); my += v * Math.floor(i / bw); });
    const ox = Math.min(28 - bw, Math.max(0, Math.round(13.5 - mx / mass)));
    const oy = Math.min(28 - bh, Math.max(0, Math.round(13.5 - my / mass)));
    const out = new Array(784).fill(0);
    box.forEach((v, i) => { out[(oy + Math.floor(i / bw)) * 28 + ox + (i % bw)] = Math.round(v); });
    return out;
  }

  // Paints 0–255 pixels (T·C values, row-major, C = 1 or 3) onto a canvas of the image's size.
  function paintPixels(target, pixels, side, channels) {
    target.width = side;
    target.height = side;
    const ctx = target.getContext("2d");
    const image = ctx.createImageData(side, side);
    for (let p = 0; p < side * side; p++) {
      for (let c = 0; c < 3; c++) image.data[4 * p + c] = pixels[p * channels + (channels === 3 ? c : 0)];
      image.data[4 * p + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
    return target;
  }

  function showPreview(pixels, side = 28, channels = 1) {
    const preview = $("digit-preview");
    if (pixels === null) {
      preview.getContext("2d").clearRect(0, 0, preview.width, preview.height);
      return;
    }
    paintPixels(preview, pixels, side, channels);
  }

  async function onClassifyModelChange() {
    const model = modelByName($("classify-model").value);
    if (!model) return;
    await loadSampleList(model.task);
  }
  $("classify-model").addEventListener("change", onClassifyModelChange);

  async function loadSampleList(task) {
    if (state.samples[task]) { fillSamples(task); return; }
    setStatus("sample-status", `Loading the ${task} test images…`);
    try {
      state.samples[task] = await api("GET", `/samples/${task}`);
      fillSamples(task);
      const source = state.samples[task].source.split(",")[0];        // "MNIST test split, the official …"
      setStatus("sample-status", `${state.samples[task].images.length} test images of the ${source}.`);
    } catch (err) {
      setStatus("sample-status", `No test images: ${err.message}`, true);
    }
  }

  function fillSamples(task) {
    const list = state.samples[task];
    $("sample-index").replaceChildren(...list.images.map((s) =>
      new Option(`#${s.index}: ${s.class_name} (test image ${s.test_index})`, String(s.index))));
  }

  $("sample-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const model = modelByName($("classify-model").value);
    if (!model) return;
    const index = $("sample-index").value;
    if (index === "") return;
    try {
      const s = await api("GET", `/samples/${model.task}/${index}`);
      const small = paintPixels(document.createElement("canvas"), s.pixels, s.width, s.channels);
      clearInk();
      inkCtx.imageSmoothingEnabled = false;
      inkCtx.drawImage(small, 0, 0, ink.width, ink.height);
      render();
      showPreview(s.pixels, s.width, s.channels);
      state.sampleInput = { task: s.task, pixels: s.pixels, label: s.label, className: s.class_name,
                            index: s.index };
      setStatus("sample-status", `Loaded test image ${s.test_index} (true class: ${s.class_name}).`);
    } catch (err) {
      setStatus("sample-status", `Could not load the test image: ${err.message}`, true);
    }
  });

  async function classNamesOf(name) {
    if (!state.classNames[name]) {
      const detail = await api("GET", `/models/${encodeURIComponent(name)}`);
      state.classNames[name] = detail.manifest.output.class_names;
    }
    return state.classNames[name];
  }

  $("digit-classify").addEventListener("click", classify);

  async function classify() {
    const name = $("classify-model").value;
    const model = modelByName(name);
    if (!model) { setStatus("classify-status", "No classifier is ready.", true); return; }
    let pixels;
    if (state.sampleInput) {
      if (state.sampleInput.task !== model.task) {
        setStatus("classify-status", `This test image is ${state.sampleInput.task}; model ${name} reads ` +
                  `${model.task} images.`, true);
        return;
      }
      pixels = state.sampleInput.pixels;
    } else {
      if (model.task !== "mnist") {
        setStatus("classify-status", `Model ${name} reads ${model.task} images: load a test image.`, true);
        return;
      }
      pixels = drawingAsMnist();
      if (!pixels) { setStatus("classify-status", "Draw a digit first.", true); return; }
      showPreview(pixels);
    }
    setStatus("classify-status", `Classifying with ${name}…`);
    try {
      const names = await classNamesOf(name);
      const result = await api("POST", "/classify", { model: name, pixels, scale: 255,
                                                      return_sequence: true });
      showPrediction(result.predictions[0], names, result);
    } catch (err) {
      setStatus("classify-status", `Classification failed: ${err.message}`, true);
    }
  }

  function showPrediction(p, names, result) {
    setStatus("classify-status", `${result.model}: ${result.latency_ms.toFixed(0)} ms on the server.`);
    $("classify-label").hidden = false;
    $("classify-label-value").textContent = p.class_name;
    $("classify-confidence").textContent = `(${(100 * p.probabilities[p.label]).toFixed(1)} %)`;
    const bars = $("prob-bars");
    bars.replaceChildren();
    p.probabilities.forEach((prob, i) => {
      const li = document.createElement("li");
      if (i === p.label) li.className = "top";
      const label = document.createElement("span");
      label.textContent = names[i];
      const bar = document.createElement("span");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.display = "block";
      fill.style.width = `${(100 * prob).toFixed(1)}%`;
      bar.appendChild(fill);
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = `${(100 * prob).toFixed(1)} %`;
      li.append(label, bar, value);
      bars.appendChild(li);
    });
    drawAnytime(p.sequence, names);
  }

  function drawAnytime(sequence, names) {
    const svg = $("anytime-plot");
    const n = sequence.confidence.length;
    const xs = Array.from({ length: n }, (_, i) => i + 1);
    const bands = [];
    for (let i = 0; i < n; i++) {
      const color = PALETTE[sequence.labels[i] % PALETTE.length];
      const last = bands[bands.length - 1];
      if (last && last.label === sequence.labels[i]) last.x1 = i + 1;
      else bands.push({ x0: i + 1, x1: i + 1, color, label: sequence.labels[i] });
    }
    drawPlot(svg, { series: [{ xs, ys: sequence.confidence, color: "#1b1f24", name: "confidence" }],
                    x: [1, n], y: [0, 1], xlabel: "pixels read", ylabel: "confidence", bands });
    svg.dataset.points = String(n);
    const final = sequence.labels[n - 1];
    let since = n;
    while (since > 1 && sequence.labels[since - 2] === final) since--;
    const seen = [...new Set(bands.map((b) => b.label))].map((l) => names[l]);
    $("anytime-caption").textContent =
      `Classes predicted along the way: ${seen.join(", ")}. The prediction has been ${names[final]} ` +
      `since pixel ${since} of ${n} and ends at ${(100 * sequence.confidence[n - 1]).toFixed(1)} % confidence.`;
  }

  // ---------------------------------------------------------------------------------------------
  // Pendulum
  // ---------------------------------------------------------------------------------------------
  const SLIDERS = { theta1: "°", theta2: "°", omega1: "°/s", omega2: "°/s", horizon: "" };
  for (const [id, unit] of Object.entries(SLIDERS)) {
    const update = () => { $(`${id}-out`).textContent = `${$(id).value}${unit}`; };
    $(id).addEventListener("input", update);
    update();
  }

  $("pendulum-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const initial = Object.fromEntries(["theta1", "theta2", "omega1", "omega2"]
      .map((id) => [id, Number($(id).value)]));
    const steps = Number($("horizon").value);
    setStatus("pendulum-status", "Running the model and the physics…");
    try {
      const model = $("pendulum-model").value || undefined;      // none listed yet: the service's default
      const r = await api("POST", "/pendulum/predict", { initial_state: initial, units: "degrees", steps,
                                                         include_reference: true, model });
      showPendulum(initial, r);
    } catch (err) {
      setStatus("pendulum-status", `The pendulum run failed: ${err.message}`, true);
    }
  });

  let lastRun = null;
  $("pendulum-replay").addEventListener("click", () => { if (lastRun) animate(lastRun); });

  function showPendulum(initial, r) {
    const tr = r.trajectories[0];
    const first = [initial.theta1, initial.theta2, initial.omega1, initial.omega2];
    const run = { times: [0, ...r.times], predicted: [first, ...tr.predicted], reference: [first, ...tr.reference],
                  dt: r.dt };
    const steps = r.times.length;
    const moveError = drawPlot($("error-plot"), {
      series: [{ xs: r.times, ys: tr.step_mse, color: "#cf222e", name: "squared error", markers: true }],
      x: [r.times[0], r.times[steps - 1]], y: [0, Math.max(...tr.step_mse)],
      xlabel: "time (s)", ylabel: "error (deg²)" });
    $("error-plot").dataset.points = String(tr.step_mse.length);
    $("error-plot").dataset.values = JSON.stringify(tr.step_mse);
    $("error-caption").textContent = `Mean squared error over the ${steps} steps: ${fmt(tr.mse)} deg² ` +
      `(step 1: ${fmt(tr.step_mse[0])}, step ${steps}: ${fmt(tr.step_mse[steps - 1])}).`;
    const e = tr.energy;
    const all = [...e.predicted, ...e.reference, e.initial];
    const moveEnergy = drawPlot($("energy-plot"), {
      series: [{ xs: r.times, ys: e.predicted, color: "#0b5fce", name: "predicted" },
               { xs: r.times, ys: e.reference, color: "#bc4c00", name: "physics", dash: "5 3" }],
      x: [r.times[0], r.times[steps - 1]], y: [Math.min(...all), Math.max(...all)],
      xlabel: "time (s)", ylabel: "energy (J)" });
    $("energy-caption").textContent = `Energy at the start ${fmt(e.initial)} J; the physics conserves it ` +
      `(last step ${fmt(e.reference[steps - 1])} J), the prediction ends at ${fmt(e.predicted[steps - 1])} J.`;
    run.moveCursors = (t) => { moveError(t); moveEnergy(t); };
    setStatus("pendulum-status", `${r.model}: ${steps} steps of ${r.dt} s` +
              (r.extrapolated ? ` (beyond the trained ${r.trained_steps} steps: extrapolation).` : "."));
    $("pendulum-replay").disabled = false;
    lastRun = run;
    animate(run);
  }

  function drawDoublePendulum(ctx, cx, cy, arm, stateDeg, color, title, trail) {
    const [t1, t2] = [stateDeg[0] * Math.PI / 180, stateDeg[1] * Math.PI / 180];
    const x1 = cx + arm * Math.sin(t1), y1 = cy + arm * Math.cos(t1);
    const x2 = x1 + arm * Math.sin(t2), y2 = y1 + arm * Math.cos(t2);
    ctx.fillStyle = "#1b1f24";
    ctx.font = "15px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.fillText(title, cx, 20);
    if (trail.length > 1) {
      ctx.strokeStyle = color;
      ctx.globalAlpha = 0.35;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      trail.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.stroke();
      ctx.globalAlpha = 1;
    }
    ctx.strokeStyle = "#57606a";
    ctx.lineWidth = 3;
    ctx.beginPath();
    ctx.moveTo(cx, cy); ctx.lineTo(x1, y1); ctx.lineTo(x2, y2);
    ctx.stroke();
    ctx.fillStyle = color;
    for (const [x, y] of [[x1, y1], [x2, y2]]) {
      ctx.beginPath(); ctx.arc(x, y, 9, 0, 2 * Math.PI); ctx.fill();
    }
    ctx.fillStyle = "#1b1f24";
    ctx.beginPath(); ctx.arc(cx, cy, 4, 0, 2 * Math.PI); ctx.fill();
    return [x2, y2];
  }

  function animate(run) {
    if (state.animation) clearInterval(state.animation);
    const pc = $("pendulum-canvas");
    const ctx = pc.getContext("2d");
    const half = pc.width / 2, arm = 64, cy = 150;
    const trails = [[], []];
    let frame = 0;
    pc.dataset.frames = String(run.times.length);
    const draw = () => {
      ctx.clearRect(0, 0, pc.width, pc.height);
      ctx.strokeStyle = "#d0d7de";
      ctx.beginPath(); ctx.moveTo(half, 30); ctx.lineTo(half, pc.height - 10); ctx.stroke();
      trails[0].push(drawDoublePendulum(ctx, half / 2, cy, arm, run.predicted[frame], "#0b5fce",
                                        "Predicted (model)", trails[0]));
      trails[1].push(drawDoublePendulum(ctx, half + half / 2, cy, arm, run.reference[frame], "#bc4c00",
                                        "Physics", trails[1]));
      pc.dataset.frame = String(frame);
      $("pendulum-time").textContent = `t = ${run.times[frame].toFixed(1)} s`;
      if (frame > 0) run.moveCursors(run.times[frame]);
      frame += 1;
      if (frame >= run.times.length) { clearInterval(state.animation); state.animation = null; }
    };
    draw();
    // real time: one frame per dt (0.1 s), at most 10 s for a long horizon
    const period = Math.min(1000 * run.dt, 10000 / run.times.length);
    state.animation = setInterval(draw, period);
  }

  // ---------------------------------------------------------------------------------------------
  // Stability reports
  // ---------------------------------------------------------------------------------------------
  const CONTRAST_MODEL = "mnist-frnn";      // the FRNN: free feedback, no Theorem 3

  $("stability-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("stability-model").value;
    if (!name) return;
    const ready = (n) => modelByName(n)?.status === "ready";
    const contrast = name !== CONTRAST_MODEL ? CONTRAST_MODEL : "mnist";
    showReport(name, $("report-main")).then(() => {
      if (ready(contrast)) return showReport(contrast, $("report-contrast"), name === CONTRAST_MODEL
        ? "for contrast: the AFRNN on the same task" : "for contrast: the FRNN, feedback not tied to W");
      $("report-contrast").replaceChildren();
      return null;
    });
  });

  const NUMBERS = [
    ["theorem_holds", "Theorem 3 holds (every input)"],
    ["max_real_eigenvalue", "max Re λ(DₜB)"],
    ["max_real_bound", "bound on max Re λ(DₜB), every step"],
    ["max_step_spectral_radius", "max spectral radius of the Euler step"],
    ["top_lyapunov_exponent", "top Lyapunov exponent (per step)"],
    ["gradient_norm_ratio", "‖∂z_T/∂z_0‖"],
    ["gradient_regime", "gradient regime"],
    ["divergence_ratio", "divergence of two nearby runs"],
    ["horizon_growth", "growth of a perturbation over the sequence"],
  ];

  async function showReport(name, container, subtitle) {
    const heading = document.createElement("h3");
    heading.textContent = subtitle ? `${name}, ${subtitle}` : name;
    const status = document.createElement("p");
    status.className = "status";
    status.setAttribute("role", "status");
    status.textContent = "Computing the report…";
    container.replaceChildren(heading, status);
    let report;
    try {
      report = await api("POST", `/models/${encodeURIComponent(name)}/stability`, {});
    } catch (err) {
      status.textContent = `The report failed: ${err.message}`;
      status.classList.add("error");
      return;
    }
    const s = report.summary, m = report.model;
    status.textContent = `${m.variant.toUpperCase()}, state size ${m.state_size}, ${m.steps} steps` +
      (m.epsilon != null ? `, ε = ${m.epsilon}, γ = ${m.gamma}` : "") +
      (m.discretisation === "imex" ? ", IMEX step (linear part by the trapezoidal rule)" : "") + ".";
    const verdict = document.createElement("p");
    verdict.className = "big";
    verdict.append("Verdict: ");
    const badge = document.createElement("span");
    badge.className = `verdict ${s.verdict || ""}`;
    badge.dataset.verdict = s.verdict || "none";
    badge.textContent = s.verdict || "no evidence";
    verdict.appendChild(badge);
    const reasons = document.createElement("ul");
    for (const reason of s.verdict_reasons) {
      const li = document.createElement("li");
      li.textContent = reason;
      reasons.appendChild(li);
    }
    const numbers = document.createElement("dl");
    for (const [key, label] of NUMBERS) {
      if (s[key] === null || s[key] === undefined) continue;
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.textContent = typeof s[key] === "number" ? fmt(s[key]) : String(s[key]);
      numbers.append(dt, dd);
    }
    const figure = document.createElement("p");
    figure.className = "note";
    figure.textContent = "Loading the figures…";
    container.append(verdict, reasons, numbers, figure);
    try {
      const png = await api("GET", `/models/${encodeURIComponent(name)}/stability.png`, undefined, "blob");
      const img = document.createElement("img");
      img.src = URL.createObjectURL(png);
      img.alt = `Stability figures of ${name}: spectra of DₜB along the sequence, gradient propagation ` +
                `and Lyapunov exponents (verdict ${s.verdict}).`;
      figure.replaceWith(img);
    } catch (err) {
      figure.textContent = `No figures: ${err.message}`;
      figure.classList.add("error");
    }
  }

  // ---------------------------------------------------------------------------------------------
  clearInk();
  loadModels();
})();
