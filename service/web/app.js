// The automodel page: plain JavaScript against the same HTTP API anyone can call (see /docs).
// The token is entered once and kept in this browser's localStorage; every request sends it as a bearer token.
"use strict";

const TOKEN_KEY = "automodel.token";
const PAGE = 10;
const $ = (id) => document.getElementById(id);
let currentRun = null;   // the run shown in section 2
let pollTimer = null;
let historyOffset = 0;

function token() { return localStorage.getItem(TOKEN_KEY) || ""; }

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token()) headers["Authorization"] = "Bearer " + token();
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (!response.ok) {
    let detail = response.status + " " + response.statusText;
    try { const body = await response.json(); if (body && body.detail) detail = body.detail; } catch (e) { /* not JSON */ }
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return response;
}
const apiJson = async (path, options) => (await api(path, options)).json();

function setText(id, text, cls) {
  const el = $(id);
  el.textContent = text || "";
  if (cls !== undefined) el.className = cls;
}

// ---- token and health -----------------------------------------------------------------------------------------------

$("token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const value = $("token").value.trim();
  if (!value) { setText("token-state", "paste a token first"); return; }
  localStorage.setItem(TOKEN_KEY, value);
  await checkToken();
});

async function checkToken() {
  if (!token()) { setText("token-state", "no token yet: ask your operator for one"); return false; }
  try {
    await loadHistory(0);
    setText("token-state", "token accepted");
    $("token").value = token();
    return true;
  } catch (error) {
    setText("token-state", error.message);
    return false;
  }
}

async function checkHealth() {
  try {
    const response = await fetch("/health");
    const body = await response.json();
    const reasons = ["instance", "daemon", "storage", "lake_index"].map((k) => body[k] && body[k].reason).filter(Boolean);
    setText("health", body.status === "ok" ? "service ok" : "degraded", "pill " + body.status);
    $("health").title = reasons.join(" ") || "every part is healthy";
  } catch (error) {
    setText("health", "service unreachable", "pill failed");
  }
}

// ---- upload: the target is picked from the file's header ---------------------------------------------------------------

function splitLine(line, delimiter) {
  const cells = [];
  let cell = "", quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') { cell += '"'; i++; }
      else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === delimiter) { cells.push(cell.trim()); cell = ""; }
    else cell += ch;
  }
  cells.push(cell.trim());
  return cells;
}

async function headerColumns(file) {
  const name = file.name.toLowerCase();
  if (/\.(gz|zip|parquet|xlsx)$/.test(name)) return null;   // binary: the server reads it; the target is typed
  const text = await file.slice(0, 65536).text();
  if (/\.jsonl$/.test(name)) {
    try { return Object.keys(JSON.parse(text.split(/\r?\n/).find((l) => l.trim()))); } catch (e) { return null; }
  }
  if (/\.json$/.test(name)) {
    if (file.size > 5e6) return null;
    try { const rows = JSON.parse(await file.text()); return Array.isArray(rows) && rows.length ? Object.keys(rows[0]) : null; } catch (e) { return null; }
  }
  const line = text.replace(/^\uFEFF/, "").split(/\r?\n/).find((l) => l.trim()) || "";
  const delimiters = [",", ";", "\t", "|"];
  const delimiter = delimiters.reduce((best, d) => (splitLine(line, d).length > splitLine(line, best).length ? d : best), ",");
  const columns = splitLine(line, delimiter).filter((c) => c !== "");
  return columns.length > 1 ? columns : null;
}

$("file").addEventListener("change", async () => {
  const file = $("file").files[0];
  const select = $("target");
  select.innerHTML = '<option value="">let automodel choose</option>';
  $("target-text").hidden = true;
  $("start").disabled = !file;
  if (!file) return;
  const columns = await headerColumns(file);
  if (!columns) {
    select.hidden = true;
    $("target-text").hidden = false;
    setText("upload-message", "This format's header is read by the service: type the column to predict, or leave it empty.");
    return;
  }
  select.hidden = false;
  for (const column of columns) {
    const option = document.createElement("option");
    option.value = option.textContent = column;
    select.appendChild(option);
  }
  setText("upload-message", `${columns.length} columns found in ${file.name}; pick the one to predict.`);
});

$("upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file, file.name);
  const target = $("target-text").hidden ? $("target").value : $("target-text").value.trim();
  if (target) form.append("target", target);
  if ($("budget").value) form.append("budget", $("budget").value);
  $("start").disabled = true;
  setText("upload-message", `uploading ${file.name}…`);
  try {
    const body = await apiJson("/runs", { method: "POST", body: form });
    setText("upload-message", `run ${body.run_id} queued`);
    openRun(body.run_id);
    loadHistory(0);
  } catch (error) {
    setText("upload-message", error.message, "message error");
  } finally {
    $("start").disabled = false;
  }
});

// ---- one run, followed stage by stage -----------------------------------------------------------------------------------

function renderRun(run) {
  setText("run-id", run.run_id);
  setText("run-status", run.status + (run.stage && run.status === "running" ? ": " + run.stage : ""), "pill " + run.status);
  setText("run-file", `${run.file || ""}${run.target ? " → predicting " + run.target : ""}${run.model_run_id ? " (scored with the model of " + run.model_run_id + ")" : ""}`);
  const list = $("stage-list");
  list.innerHTML = "";
  for (const stage of run.stages || []) {
    const item = document.createElement("li");
    item.textContent = stage.name;
    item.className = stage.status;
    item.dataset.stage = stage.name;
    item.title = stage.status;
    list.appendChild(item);
  }
  $("run-error").hidden = run.status !== "failed";
  setText("run-error", run.error || "");
  $("run-result").hidden = run.status !== "success";
  if (run.status === "success") {
    setText("run-summary", run.summary || "");
    const table = $("run-metrics");
    table.innerHTML = "";
    for (const [name, value] of Object.entries(run.metrics || {})) {
      const row = table.insertRow();
      row.insertCell().textContent = name;
      row.insertCell().textContent = typeof value === "number" ? value.toFixed(4) : String(value);
    }
    const predicts = Boolean(run.links && run.links.predict);
    $("score-heading").hidden = $("score-form").hidden = !predicts;
  }
}

async function openRun(runId) {
  currentRun = runId;
  clearTimeout(pollTimer);
  $("run").hidden = false;
  $("dashboard-frame").hidden = true;
  $("chart-frame").hidden = true;
  setText("answer", "");
  setText("score-status", "");
  $("download-scores").hidden = true;
  await poll(runId);
}

async function poll(runId) {
  if (runId !== currentRun) return;
  try {
    const run = await apiJson(`/runs/${encodeURIComponent(runId)}`);
    renderRun(run);
    if (run.status === "queued" || run.status === "running") pollTimer = setTimeout(() => poll(runId), 1000);
    else loadHistory(historyOffset);
  } catch (error) {
    setText("run-error", error.message);
    $("run-error").hidden = false;
  }
}

async function downloadFrom(path, fileName) {
  const blob = await (await api(path)).blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = fileName;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
}

async function showInFrame(frameId, path) {
  const blob = await (await api(path)).blob();
  const frame = $(frameId);
  if (frame.src.startsWith("blob:")) URL.revokeObjectURL(frame.src);
  frame.src = URL.createObjectURL(new Blob([blob], { type: "text/html" }));
  frame.hidden = false;
}

$("open-dashboard").addEventListener("click", async () => {
  try { await showInFrame("dashboard-frame", `/runs/${encodeURIComponent(currentRun)}/dashboard`); }
  catch (error) { setText("run-error", error.message); $("run-error").hidden = false; }
});

$("download-predictions").addEventListener("click", async (event) => {
  event.preventDefault();
  try { await downloadFrom(`/runs/${encodeURIComponent(currentRun)}/predictions?format=csv`, `${currentRun}_predictions.csv`); }
  catch (error) { setText("run-error", error.message); $("run-error").hidden = false; }
});

$("ask-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  setText("answer", "thinking…");
  $("chart-frame").hidden = true;
  try {
    const body = await apiJson(`/runs/${encodeURIComponent(currentRun)}/ask`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ question }),
    });
    setText("answer", body.answer);
    if (body.chart_url) await showInFrame("chart-frame", body.chart_url);
  } catch (error) {
    setText("answer", error.message, "answer error");
  }
});

$("score-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("score-file").files[0];
  if (!file) { setText("score-status", "choose a file to score first"); return; }
  const modelRun = currentRun;
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("model", modelRun);
  $("download-scores").hidden = true;
  setText("score-status", `uploading ${file.name}…`);
  try {
    const body = await apiJson("/runs", { method: "POST", body: form });
    followScoring(body.run_id, file.name);
  } catch (error) {
    setText("score-status", error.message, "message error");
  }
});

async function followScoring(runId, fileName) {
  try {
    const run = await apiJson(`/runs/${encodeURIComponent(runId)}`);
    setText("score-status", `scoring run ${runId}: ${run.status}${run.stage && run.status === "running" ? " (" + run.stage + ")" : ""}`
      + (run.status === "failed" ? ": " + (run.error || "") : ""));
    $("score-status").dataset.status = run.status;
    if (run.status === "queued" || run.status === "running") { setTimeout(() => followScoring(runId, fileName), 1000); return; }
    if (run.status === "success") {
      const link = $("download-scores");
      link.hidden = false;
      link.dataset.run = runId;
      link.textContent = `Download predictions for ${fileName} (CSV)`;
    }
    loadHistory(0);
  } catch (error) {
    setText("score-status", error.message, "message error");
  }
}

$("download-scores").addEventListener("click", async (event) => {
  event.preventDefault();
  const runId = $("download-scores").dataset.run;
  try { await downloadFrom(`/runs/${encodeURIComponent(runId)}/predictions?format=csv`, `${runId}_predictions.csv`); }
  catch (error) { setText("score-status", error.message, "message error"); }
});

// ---- history ------------------------------------------------------------------------------------------------------------

async function loadHistory(offset) {
  const params = new URLSearchParams({ limit: PAGE, offset });
  if ($("history-status").value) params.set("status", $("history-status").value);
  if ($("history-file").value.trim()) params.set("file", $("history-file").value.trim());
  const body = await apiJson("/runs?" + params);
  historyOffset = offset;
  const tbody = $("history").tBodies[0];
  tbody.innerHTML = "";
  for (const run of body.runs) {
    const row = tbody.insertRow();
    row.dataset.run = run.run_id;
    const metric = Object.entries(run.metrics || {})[0];
    for (const text of [(run.created_at || "").replace("T", " ").replace("+00:00", " UTC"), run.run_id, run.file || "", run.target || "",
                        run.status, metric ? `${metric[0]} ${Number(metric[1]).toFixed(3)}` : (run.error || "")]) {
      row.insertCell().textContent = text;
    }
    row.cells[4].className = "pill " + run.status;
    row.addEventListener("click", () => openRun(run.run_id));
  }
  setText("history-message", body.total ? `${offset + 1}–${offset + body.runs.length} of ${body.total} runs` : "no runs yet");
  $("history-prev").disabled = offset === 0;
  $("history-next").disabled = offset + body.runs.length >= body.total;
  return body;
}

$("history-filter").addEventListener("submit", (event) => { event.preventDefault(); loadHistory(0).catch((e) => setText("history-message", e.message)); });
$("history-prev").addEventListener("click", () => loadHistory(Math.max(0, historyOffset - PAGE)));
$("history-next").addEventListener("click", () => loadHistory(historyOffset + PAGE));

checkHealth();
setInterval(checkHealth, 15000);
checkToken();
