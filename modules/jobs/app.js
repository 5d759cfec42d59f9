// Jobs front end: every job of pineapple-jobd, live. Plain JavaScript, no build step.
// Calls go through the device's API (here: the dev gateway), which forwards
// {"module": "jobs", "action", ...} to the module's socket. call() is the
// same as packetsnoop's on purpose: a module's page ships alone on the
// device (no file shared between modules), so each carries its own copy.
"use strict";

const MODULE = "jobs";
const API = "/api/module/request";
const POLL_MS = 1000;

const $ = (id) => document.getElementById(id);

async function call(action, fields = {}) {
  const response = await fetch(API, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ module: MODULE, action, ...fields }),
  });
  let answer;
  try {
    answer = await response.json();
  } catch (err) {
    throw new Error(`the API answered HTTP ${response.status} without JSON`);
  }
  if (answer === null) throw new Error("Request returned empty response");
  if (answer.error !== undefined && answer.error !== null) {
    throw new Error(typeof answer.error === "string" ? answer.error : JSON.stringify(answer.error));
  }
  return answer.payload;
}

function showError(text) {
  $("error").textContent = text || "";
  $("error").hidden = !text;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

// ------------------------------------------------------------------- rows
// Rows are kept and updated in place, keyed by job id, so a button does
// not vanish under the pointer at the next refresh.
function row(job) {
  let tr = document.querySelector(`tr[data-job-id="${CSS.escape(job.job_id)}"]`);
  if (!tr) {
    tr = el("tr", { "data-job-id": job.job_id });
    tr.append(el("td", { class: "job" }), el("td", { class: "packages" }), el("td", { class: "state" }),
              el("td", { class: "progress" }), el("td", { class: "log" }), el("td", { class: "actions" }));
  }
  tr.dataset.state = job.state;
  const [jobCell, packagesCell, stateCell, progressCell, logCell, actionsCell] = tr.children;

  const lineage = (job.parent_id ? ` (restart of ${job.parent_id.slice(0, 8)})` : "") +
                  (job.child_id ? ` (restarted as ${job.child_id.slice(0, 8)})` : "");
  jobCell.replaceChildren(el("strong", { text: job.type }), el("br"),
                          el("code", { text: job.job_id.slice(0, 8) + lineage, title: job.job_id }));
  packagesCell.textContent = job.packages.length ? job.packages.join(", ") : "—";
  stateCell.replaceChildren(el("span", { class: `badge state-${job.state}`, text: job.state }));

  const fraction = job.progress && typeof job.progress.fraction === "number" ? job.progress.fraction : null;
  const bar = progressCell.querySelector("progress") || el("progress", { max: "100" });
  if (fraction === null && job.state === "running") bar.removeAttribute("value");  // indeterminate
  else bar.value = Math.round((fraction === null ? (job.state === "succeeded" ? 1 : 0) : fraction) * 100);
  const percent = bar.hasAttribute("value") ? `${bar.value}%` : "…";
  const message = (job.progress && job.progress.message) || "";
  progressCell.replaceChildren(bar, el("span", { class: "progress-text", text: `${percent} ${message}`.trim() }));

  const log = el("pre", { class: "log", text: job.log.join("\n") || "(no output yet)" });
  logCell.replaceChildren(log);
  if (job.job_error) logCell.append(el("div", { class: "job-error", text: job.job_error }));

  actionsCell.replaceChildren(
    button("Cancel", "cancel", job, job.can_cancel, () => act("cancel_job", job)),
    button("Restart", "restart", job, job.can_restart, () => act("restart_job", job)));
  return tr;
}

function button(label, kind, job, enabled, onClick) {
  const node = el("button", { type: "button", class: kind, "data-action": kind, text: label });
  node.disabled = !enabled;
  node.addEventListener("click", onClick);
  return node;
}

async function act(action, job) {
  try {
    const answer = await call(action, { job_id: job.job_id });
    if (action === "cancel_job" && answer.cancelled === false) showError(answer.message || "not cancelled");
    else showError("");
  } catch (err) {
    showError(`${action === "cancel_job" ? "Cancel" : "Restart"} failed: ${err.message}`);
  }
  await refresh();
}

// ---------------------------------------------------------------- polling
let refreshing = null;

async function refresh() {
  if (refreshing) return refreshing;  // one listing at a time, however many clicks
  refreshing = (async () => {
    try {
      const listing = await call("list_jobs");
      const rows = listing.jobs.map(row);
      $("rows").replaceChildren(...rows);
      $("empty").hidden = rows.length > 0;
      const running = listing.jobs.filter((j) => j.state === "running").length;
      const queued = listing.jobs.filter((j) => j.state === "queued" || j.state === "held").length;
      $("summary").textContent = `${listing.total} job(s), ${running} running, ${queued} waiting`;
      document.body.dataset.state = "live";
      if (!$("error").textContent.startsWith("Cancel") && !$("error").textContent.startsWith("Restart")) {
        showError("");
      }
    } catch (err) {
      document.body.dataset.state = "error";
      showError(`Cannot list the jobs: ${err.message}`);
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

async function loop() {
  await refresh();
  setTimeout(loop, POLL_MS);
}

loop();
