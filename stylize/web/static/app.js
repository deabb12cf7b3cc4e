// The stylize web page: pick images, set options, start a job, follow it live, download it.
// Plain JavaScript, no build step, nothing loaded from elsewhere.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const TERMINAL = new Set(["done", "cancelled", "failed", "interrupted"]);
  // The server's token, given with the page: sent with every request that changes something.
  const TOKEN = (document.querySelector('meta[name="stylize-token"]') || {}).content || "";
  const HISTORY_SIZE = 60;

  const state = {
    fields: [],
    limits: {},
    examples: [],
    content: null, // {ref: {upload|example}, label, thumb, pending}
    styles: [],
    current: null, // id of the job on the stage
    snapshots: new Map(), // job id -> latest snapshot
    order: [], // job ids of the history, newest first (from the server: every tab, every run)
    points: [], // loss points of the job on the stage: [index, scale, total, content, style]
    previewVersion: 0,
    source: null, // EventSource of the job on the stage
  };

  // ------------------------------------------------------------------ helpers

  function el(tag, attrs = {}, children = []) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of [].concat(children)) if (child) node.append(child);
    return node;
  }

  async function api(path, options = {}) {
    const headers = Object.assign({ "X-Stylize-Token": TOKEN }, options.headers || {});
    const response = await fetch(path, Object.assign({}, options, { headers, credentials: "same-origin" }));
    if (response.status === 204) return null;
    let body = null;
    try { body = await response.json(); } catch (e) { /* not JSON */ }
    if (!response.ok) {
      const detail = body && body.detail ? body.detail : `${response.status} ${response.statusText}`;
      throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
    }
    return body;
  }

  function formatSeconds(s) {
    if (s === null || s === undefined || !isFinite(s)) return "";
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return h ? `${h}:${String(m).padStart(2, "0")}:${String(sec).padStart(2, "0")}` : `${m}:${String(sec).padStart(2, "0")}`;
  }

  function megabytes(bytes) { return `${Math.round(bytes / 1048576)} MB`; }

  // ------------------------------------------------------------------ images

  function setError(id, message) { $(id).textContent = message || ""; }

  async function uploadFile(file) {
    if (state.limits.max_upload_bytes && file.size > state.limits.max_upload_bytes) {
      throw new Error(`${file.name}: larger than the ${megabytes(state.limits.max_upload_bytes)} this server accepts`);
    }
    const form = new FormData();
    form.append("file", file, file.name);
    return api("/api/uploads", { method: "POST", body: form });
  }

  function pickFiles(role, files) {
    const list = Array.from(files).filter(Boolean);
    if (!list.length) return;
    setError(`${role}-error`, "");
    const chosen = role === "content" ? list.slice(0, 1) : list;
    for (const file of chosen) {
      const item = { ref: null, label: file.name, thumb: URL.createObjectURL(file), pending: true };
      if (role === "content") state.content = item;
      else {
        if (state.styles.length >= (state.limits.max_styles || 8)) {
          setError("style-error", `at most ${state.limits.max_styles} paintings`);
          break;
        }
        state.styles.push(item);
      }
      renderPicked();
      uploadFile(file).then((data) => {
        item.ref = { upload: data.id };
        item.label = data.label;
        item.pending = false;
        renderPicked();
      }).catch((error) => {
        if (role === "content") { if (state.content === item) state.content = null; }
        else state.styles = state.styles.filter((s) => s !== item);
        setError(`${role}-error`, error.message);
        renderPicked();
      });
    }
  }

  function pickExample(example) {
    const item = { ref: { example: example.name }, label: example.title, thumb: example.url, pending: false };
    if (example.kind === "content") {
      state.content = item;
      setError("content-error", "");
    } else if (!state.styles.some((s) => s.ref && s.ref.example === example.name)) {
      if (state.styles.length >= (state.limits.max_styles || 8)) return;
      state.styles.push(item);
      setError("style-error", "");
    }
    renderPicked();
  }

  function thumb(item, onRemove) {
    return el("figure", { className: "thumb" + (item.pending ? " pending" : ""), title: item.label }, [
      el("img", { src: item.thumb, alt: item.label }),
      el("figcaption", { text: item.label }),
      el("button", { type: "button", className: "remove", "aria-label": `remove ${item.label}`, text: "×",
        onclick: (event) => { event.stopPropagation(); onRemove(); } }),
    ]);
  }

  function renderPicked() {
    const content = $("content-picked");
    content.replaceChildren();
    if (state.content) content.append(thumb(state.content, () => { state.content = null; renderPicked(); }));
    $("content-drop").classList.toggle("filled", !!state.content);
    const styles = $("style-picked");
    styles.replaceChildren(...state.styles.map((item) =>
      thumb(item, () => { state.styles = state.styles.filter((s) => s !== item); renderPicked(); })));
    $("style-drop").classList.toggle("filled", state.styles.length > 0);
    for (const node of document.querySelectorAll(".examples button")) {
      const name = node.dataset.name;
      const used = (state.content && state.content.ref && state.content.ref.example === name)
        || state.styles.some((s) => s.ref && s.ref.example === name);
      node.classList.toggle("selected", !!used);
    }
    updateStart();
  }

  function updateStart() {
    const ready = state.content && !state.content.pending && state.styles.length > 0
      && state.styles.every((s) => !s.pending);
    $("start").disabled = !ready;
  }

  function setupDrop(role) {
    const zone = $(`${role}-drop`);
    const input = $(`${role}-file`);
    zone.addEventListener("click", (event) => { if (!event.target.closest("button")) input.click(); });
    zone.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); input.click(); }
    });
    input.addEventListener("change", () => { pickFiles(role, input.files); input.value = ""; });
    zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      pickFiles(role, event.dataTransfer.files);
    });
  }

  function renderExamples() {
    for (const kind of ["content", "style"]) {
      const box = $(`${kind}-examples`);
      const examples = state.examples.filter((e) => e.kind === kind);
      box.replaceChildren(...(examples.length ? [el("span", { className: "examples-label", text: "or try" })] : []),
        ...examples.map((e) => el("button", {
          type: "button", className: "example", title: `${e.title} (${e.credit})`, "data-name": e.name,
          onclick: () => pickExample(e),
        }, [el("img", { src: e.url, alt: e.title, loading: "lazy" })])));
    }
  }

  // ------------------------------------------------------------------ options form

  function fieldInput(field) {
    const id = `opt-${field.name}`;
    const value = field.default;
    let input;
    if (field.kind === "choice") {
      input = el("select", { id }, field.choices.map((c) => el("option", { value: c, text: c, selected: c === value })));
    } else if (field.kind === "bool") {
      input = el("input", { id, type: "checkbox", checked: !!value });
    } else if ((field.kind === "int" || field.kind === "float") && field.slider) {
      const mid = value !== null ? value : (field.min + field.max) / 2;
      input = el("input", { id, type: "range", min: field.min, max: field.max, value: mid,
        step: field.kind === "int" ? 1 : (field.max - field.min) / 100 });
    } else if (field.kind === "int" || field.kind === "float") {
      input = el("input", { id, type: "number", value: value === null ? "" : value, min: field.min, max: field.max,
        step: field.kind === "int" ? 1 : "any", placeholder: value === null ? "default" : null, inputmode: "decimal" });
    } else {
      input = el("input", { id, type: "text", value: Array.isArray(value) ? value.join(",") : (value ?? ""),
        placeholder: value === null ? "default" : null, spellcheck: "false" });
    }
    input.dataset.name = field.name;
    input.title = field.help;
    input.addEventListener("input", () => { input.dataset.dirty = "1"; showSliderValue(input); });
    input.addEventListener("change", () => { input.dataset.dirty = "1"; });
    return input;
  }

  function showSliderValue(input) {
    const out = $(`${input.id}-value`);
    if (out) out.textContent = Number(input.value).toFixed(1).replace(/\.0$/, "");
  }

  function fieldRow(field) {
    const input = fieldInput(field);
    const label = el("label", { for: input.id, title: field.help, text: field.label });
    const row = el("div", { className: `field kind-${field.kind}` + (field.slider ? " slider" : "") }, [label]);
    if (field.slider) {
      row.append(el("div", { className: "slider-row" }, [input, el("output", { id: `${input.id}-value` })]));
      showSliderValue(input);
    } else row.append(input);
    row.append(el("small", { className: "help", text: field.help }));
    return row;
  }

  function buildForm() {
    const basic = $("basic-fields"), advanced = $("advanced-fields");
    basic.replaceChildren();
    advanced.replaceChildren();
    const groups = new Map();
    for (const field of state.fields) {
      if (field.basic) { basic.append(fieldRow(field)); continue; }
      if (!groups.has(field.group)) {
        const box = el("fieldset", { className: "fields" }, [el("legend", { text: field.group_title })]);
        groups.set(field.group, box);
        advanced.append(box);
      }
      groups.get(field.group).append(fieldRow(field));
    }
  }

  // Only what the visitor changed is sent: a preset can then set everything it names.
  function collectOptions() {
    const options = {};
    for (const input of document.querySelectorAll("#options [data-name]")) {
      if (input.dataset.dirty !== "1") continue;
      const field = state.fields.find((f) => f.name === input.dataset.name);
      let value;
      if (field.kind === "bool") value = input.checked;
      else if (field.kind === "int" || field.kind === "float") value = input.value === "" ? null : Number(input.value);
      else value = input.value;
      options[field.name] = value;
    }
    return options;
  }

  // ------------------------------------------------------------------ jobs

  function rememberJob(id) {
    state.order = [id, ...state.order.filter((x) => x !== id)];
  }

  async function start() {
    setError("start-error", "");
    $("start").disabled = true;
    try {
      const snap = await api("/api/jobs", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ content: state.content.ref, styles: state.styles.map((s) => s.ref), options: collectOptions() }),
      });
      rememberJob(snap.id);
      state.snapshots.set(snap.id, snap);
      renderGallery();
      follow(snap.id);
    } catch (error) {
      setError("start-error", error.message);
    } finally {
      updateStart();
    }
  }

  function follow(id) {
    if (state.source) state.source.close();
    state.current = id;
    state.points = [];
    state.previewVersion = 0;
    const preview = $("preview");
    preview.hidden = true;
    preview.removeAttribute("src");
    $("placeholder").hidden = false;
    drawCurve();
    const snap = state.snapshots.get(id);
    if (snap) renderStage(snap);
    const source = new EventSource(`/api/jobs/${id}/events?offset=0`);
    state.source = source;
    source.addEventListener("update", (event) => {
      const update = JSON.parse(event.data);
      for (let i = 0; i < update.losses.length; i++) state.points[update.loss_offset + i] = update.losses[i];
      state.snapshots.set(id, update);
      if (state.current === id) renderStage(update);
      renderGalleryItem(update);
      if (TERMINAL.has(update.status)) { source.close(); if (state.source === source) state.source = null; }
    });
    source.onerror = () => {
      if (state.current !== id) return;
      $("job-phase").textContent = source.readyState === EventSource.CLOSED
        ? "Lost the connection to the server (it may have restarted): reload the page to see its jobs."
        : "Lost the connection to the server; trying again…";
    };
  }

  function renderStage(snap) {
    $("job-title").textContent = snap.title;
    const badge = $("job-status");
    badge.hidden = false;
    badge.textContent = snap.status === "queued" ? `queued · #${snap.queue_position}` : snap.status;
    badge.className = `badge ${snap.status}`;
    let phase = snap.phase;
    if (snap.status === "queued") {
      phase = snap.queue_position > 1 ? `${snap.queue_position - 1} job(s) ahead in the queue` : "next in the queue";
    }
    $("job-phase").textContent = phase.charAt(0).toUpperCase() + phase.slice(1);

    const p = snap.progress;
    const done = snap.status === "done";
    const fraction = done ? 1 : (p ? p.fraction : 0);
    $("bar").style.width = `${(fraction * 100).toFixed(1)}%`;
    $("bar").className = `bar ${snap.status}`;
    if (p) {
      const scale = p.num_scales > 1 ? `scale ${p.scale}/${p.num_scales} · ` : "";
      $("stat-step").textContent = `${scale}${p.width}×${p.height} · step ${p.step}/${p.max_steps}`;
    } else $("stat-step").textContent = "\u00a0";
    if (snap.status === "running" && p && p.eta !== null) $("stat-eta").textContent = `about ${formatSeconds(p.eta)} left`;
    else if (snap.result) $("stat-eta").textContent = `${snap.result.width}×${snap.result.height} in ${formatSeconds(snap.result.seconds)}`;
    else $("stat-eta").textContent = "";

    const error = $("job-error");
    error.hidden = !snap.error;
    error.textContent = snap.error || "";
    $("job-notes").replaceChildren(...snap.notes.map((n) => el("li", { text: n })));

    if (snap.preview_version && snap.preview_version !== state.previewVersion) {
      state.previewVersion = snap.preview_version;
      loadPreview(snap.id, snap.preview_version);
    }
    $("cancel").disabled = TERMINAL.has(snap.status);
    const download = $("download");
    if (snap.has_result) {
      download.href = `/api/jobs/${snap.id}/result.png`;
      download.setAttribute("download", "");
      download.setAttribute("aria-disabled", "false");
    } else {
      download.removeAttribute("href");
      download.setAttribute("aria-disabled", "true");
    }
    drawCurve();
  }

  function loadPreview(id, version) {
    const img = new Image();
    img.onload = () => {
      if (state.current !== id || version < state.previewVersion) return;
      const preview = $("preview");
      preview.src = img.src;
      preview.hidden = false;
      $("placeholder").hidden = true;
      preview.dataset.updates = String(Number(preview.dataset.updates || 0) + 1);
      preview.dataset.version = String(version);
    };
    img.src = `/api/jobs/${id}/preview.jpg?v=${version}`;
  }

  async function cancel() {
    if (!state.current) return;
    $("cancel").disabled = true;
    try {
      const snap = await api(`/api/jobs/${state.current}/cancel`, { method: "POST" });
      if (TERMINAL.has(snap.status)) renderStage(snap);
      else $("job-phase").textContent = "Stopping after this step…";
    } catch (error) {
      $("job-phase").textContent = error.message;
    }
  }

  // ------------------------------------------------------------------ loss curve

  function drawCurve() {
    const canvas = $("curve");
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const points = state.points.filter(Boolean);
    const pad = { l: 36, r: 8, t: 8, b: 18 };
    const w = width - pad.l - pad.r, h = height - pad.t - pad.b;
    ctx.strokeStyle = "#e4e0da";
    ctx.lineWidth = 1;
    ctx.strokeRect(pad.l + 0.5, pad.t + 0.5, w, h);
    if (points.length < 2) {
      ctx.fillStyle = "#9a948c";
      ctx.font = "12px system-ui, sans-serif";
      ctx.fillText("the loss of every step is drawn here", pad.l + 10, pad.t + h / 2);
      return;
    }
    const series = [[2, "#2f2a26"], [3, "#3a7bd5"], [4, "#d9822b"]];
    let lo = Infinity, hi = -Infinity;
    for (const pt of points) for (const [k] of series) {
      if (pt[k] > 0) { const v = Math.log10(pt[k]); lo = Math.min(lo, v); hi = Math.max(hi, v); }
    }
    if (!isFinite(lo)) return;
    lo = Math.max(lo, hi - 3); // at most three decades: the content loss starts near zero
    if (hi - lo < 0.2) { hi += 0.1; lo -= 0.1; }
    const last = points[points.length - 1][0];
    const first = points[0][0];
    const x = (i) => pad.l + ((i - first) / Math.max(1, last - first)) * w;
    const y = (v) => pad.t + (1 - (Math.min(hi, Math.max(lo, Math.log10(v))) - lo) / (hi - lo)) * h;
    const label = (v) => { const n = 10 ** v; return n >= 100 ? n.toFixed(0) : n.toPrecision(2); };
    // scale boundaries
    ctx.setLineDash([3, 3]);
    ctx.strokeStyle = "#cfc9c0";
    for (let i = 1; i < points.length; i++) {
      if (points[i][1] !== points[i - 1][1]) {
        ctx.beginPath(); ctx.moveTo(x(points[i][0]) + 0.5, pad.t); ctx.lineTo(x(points[i][0]) + 0.5, pad.t + h); ctx.stroke();
      }
    }
    ctx.setLineDash([]);
    for (const [k, color] of series.slice().reverse()) {
      ctx.strokeStyle = color;
      ctx.lineWidth = k === 2 ? 2 : 1.25;
      ctx.beginPath();
      let started = false;
      for (const pt of points) {
        if (!(pt[k] > 0)) { started = false; continue; }
        if (started) ctx.lineTo(x(pt[0]), y(pt[k])); else { ctx.moveTo(x(pt[0]), y(pt[k])); started = true; }
      }
      ctx.stroke();
    }
    ctx.fillStyle = "#9a948c";
    ctx.font = "10px system-ui, sans-serif";
    ctx.textAlign = "right";
    ctx.fillText(label(hi), pad.l - 4, pad.t + 8);
    ctx.fillText(label(lo), pad.l - 4, pad.t + h);
    ctx.textAlign = "left";
    ctx.fillText(`step ${last}`, pad.l + w - 44, pad.t + h + 13);
  }

  // ------------------------------------------------------------------ gallery

  async function deleteJob(id) {
    try {
      await api(`/api/jobs/${id}`, { method: "DELETE" });
      state.order = state.order.filter((x) => x !== id);
      state.snapshots.delete(id);
      renderGallery();
    } catch (error) {
      setError("gallery-error", error.message);
    }
  }

  function galleryItem(snap) {
    const hasImage = snap.preview_version > 0;
    return el("div", { role: "button", tabindex: "0", className: `card ${snap.status}`, "data-id": snap.id,
      title: snap.title, onclick: () => follow(snap.id),
      onkeydown: (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); follow(snap.id); } },
    }, [
      hasImage ? el("img", { src: `/api/jobs/${snap.id}/preview.jpg?v=${snap.preview_version}`, alt: snap.title })
        : el("div", { className: "card-empty", text: snap.status }),
      el("div", { className: "card-text" }, [
        el("span", { className: "card-title", text: snap.title }),
        el("span", { className: `card-status ${snap.status}`, text: snap.status }),
      ]),
      snap.has_result ? el("a", { className: "card-download", href: `/api/jobs/${snap.id}/result.png`, download: "",
        text: "⤓", title: "Download", onclick: (event) => event.stopPropagation() }) : null,
      TERMINAL.has(snap.status) ? el("button", { type: "button", className: "card-delete", text: "×",
        title: "Delete", "aria-label": `delete ${snap.title}`,
        onclick: (event) => { event.stopPropagation(); deleteJob(snap.id); } }) : null,
    ]);
  }

  function renderGalleryItem(snap) {
    const gallery = $("gallery");
    const old = gallery.querySelector(`[data-id="${snap.id}"]`);
    if (!old) return renderGallery();
    // Replace a card only when what it shows changed (not on every step).
    const key = `${snap.status}:${TERMINAL.has(snap.status) ? snap.preview_version : 0}:${snap.has_result}`;
    if (old.dataset.key === key) return;
    const card = galleryItem(snap);
    card.dataset.key = key;
    old.replaceWith(card);
  }

  function renderGallery() {
    const gallery = $("gallery");
    const snaps = state.order.map((id) => state.snapshots.get(id)).filter(Boolean);
    $("gallery-empty").hidden = snaps.length > 0;
    for (const card of gallery.querySelectorAll(".card")) card.remove();
    for (const snap of snaps) {
      const card = galleryItem(snap);
      card.dataset.key = `${snap.status}:${TERMINAL.has(snap.status) ? snap.preview_version : 0}:${snap.has_result}`;
      gallery.append(card);
    }
  }

  // The history comes from the server: jobs of every tab and of earlier runs of the server.
  async function loadHistory() {
    try {
      const data = await api(`/api/jobs?limit=${HISTORY_SIZE}`);
      setError("gallery-error", "");
      const fresh = [];
      for (const snap of data.jobs) {
        const known = state.snapshots.get(snap.id);
        if (!known || snap.version !== known.version || snap.status !== known.status) state.snapshots.set(snap.id, snap);
        fresh.push(snap.id);
      }
      const changed = fresh.join() !== state.order.join();
      state.order = fresh;
      if (changed) renderGallery();
      else for (const id of fresh) if (id !== state.current) renderGalleryItem(state.snapshots.get(id));
      $("history-note").textContent = data.total
        ? `${data.total} job(s) kept by this server; beyond ${data.keep_jobs} the oldest are deleted.` : "";
      return data.jobs;
    } catch (error) {
      setError("gallery-error", `Could not load the history: ${error.message}`);
      return [];
    }
  }

  async function loadSession() {
    const jobs = await loadHistory();
    const running = jobs.filter((snap) => !TERMINAL.has(snap.status));
    if (running.length) follow(running[0].id);
  }

  // ------------------------------------------------------------------ start up

  async function init() {
    setupDrop("content");
    setupDrop("style");
    $("start").addEventListener("click", start);
    $("cancel").addEventListener("click", cancel);
    $("reset-options").addEventListener("click", buildForm);
    window.addEventListener("resize", drawCurve);
    drawCurve();
    try {
      const data = await api("/api/options");
      state.fields = data.fields;
      state.limits = data.limits;
      state.examples = data.examples;
      buildForm();
      renderExamples();
    } catch (error) {
      setError("start-error", `Could not reach the server: ${error.message}`);
    }
    await loadSession();
    setInterval(loadHistory, 3000);
    document.body.dataset.ready = "1";
  }

  init();
})();
