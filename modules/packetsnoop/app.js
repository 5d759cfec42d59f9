// Packet Snoop front end: plain JavaScript, no build step.
// Every call goes through the device's API (here: the dev gateway), which
// forwards {"module", "action", ...} to the module's socket and returns its
// {"payload": ...} or {"error": ...}.
"use strict";

const MODULE = "packetsnoop";
const API = "/api/module/request";
const POLL_MS = 1000;          // how often a running job is polled
const MAX_POLL_FAILURES = 30;  // give up (and say so) after this many failed polls in a row

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
  if (answer.error !== undefined && answer.error !== null) {
    throw new Error(typeof answer.error === "string" ? answer.error : JSON.stringify(answer.error));
  }
  return answer.payload;
}

function setState(state) {
  document.body.dataset.state = state;
  const busy = state === "running";
  $("install").disabled = busy;
  $("remove").disabled = busy;
}

function showError(text) {
  $("error").textContent = text || "";
  $("error").hidden = !text;
}

// ---------------------------------------------------------------- dependencies
async function refreshDependencies() {
  const list = $("dependencies");
  try {
    const status = await call("dependency_status");
    list.replaceChildren(...status.dependencies.map(dependencyItem));
    if (status.dependencies.length === 0) list.replaceChildren(item("no dependencies", "muted"));
    list.dataset.allInstalled = String(status.all_installed);
    return status;
  } catch (err) {
    list.replaceChildren(item(`cannot check the dependencies: ${err.message}`, "missing"));
    return null;
  }
}

function dependencyItem(dep) {
  const li = item(dep.name);
  li.dataset.package = dep.name;
  li.dataset.installed = String(dep.installed);
  const badge = document.createElement("span");
  badge.className = `badge ${dep.installed ? "installed" : "missing"}`;
  badge.textContent = dep.installed ? `installed ${dep.version}` : "not installed";
  li.append(badge);
  return li;
}

function item(text, className) {
  const li = document.createElement("li");
  li.textContent = text;
  if (className) li.className = className;
  return li;
}

// ------------------------------------------------------------------------ jobs
function showProgress(job) {
  $("job").hidden = false;
  const bar = $("progress");
  const fraction = job.progress ? job.progress.fraction : null;
  if (job.is_complete && !job.job_error) {
    bar.value = 100;
  } else if (typeof fraction === "number") {
    bar.value = Math.round(fraction * 100);
  } else if (!job.is_complete) {
    bar.removeAttribute("value"); // indeterminate until the daemon knows how far it is
  }
  const percent = bar.hasAttribute("value") ? `${Math.round(bar.value)}%` : "";
  const message = job.is_complete ? (job.job_error ? "failed" : "done") : (job.progress && job.progress.message) || job.state;
  $("progress-text").textContent = [percent, message].filter(Boolean).join(" · ");
}

async function manage(install) {
  showError("");
  setState("running");
  $("job").hidden = false;
  $("progress").value = 0;
  $("progress-text").textContent = install ? "submitting install…" : "submitting removal…";
  try {
    const submitted = await call("manage_dependencies", { install });
    await follow(submitted.job_id);
  } catch (err) {
    showError(err.message);
    setState("failed");
  }
}

// Poll the job until it is complete. The module answers a job the daemon
// forgot as complete with a job_error, so this always ends.
async function follow(jobId) {
  setState("running");
  let failures = 0;
  for (;;) {
    let job;
    try {
      job = await call("poll_job", { job_id: jobId });
      failures = 0;
    } catch (err) {
      failures += 1;
      $("progress-text").textContent = `cannot reach the module (${err.message}); retrying…`;
      if (failures >= MAX_POLL_FAILURES) {
        showError(`gave up following job ${jobId}: ${err.message}`);
        setState("failed");
        return;
      }
      await sleep(POLL_MS);
      continue;
    }
    showProgress(job);
    if (job.is_complete) {
      if (job.job_error) showError(job.job_error);
      await refreshDependencies();
      setState(job.job_error ? "failed" : "succeeded");
      return;
    }
    await sleep(POLL_MS);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// --------------------------------------------------------------------- capture
async function captureAction(action, fields) {
  try {
    const status = await call(action, fields);
    $("capture-status").textContent = status.running
      ? `capturing on ${status.interface} → ${status.file} (${status.bytes} bytes)`
      : status.file ? `last capture: ${status.file} (${status.bytes} bytes)` : "no capture yet";
  } catch (err) {
    $("capture-status").textContent = err.message;
  }
}

// ------------------------------------------------------------------------ start
async function init() {
  $("install").addEventListener("click", () => manage(true));
  $("remove").addEventListener("click", () => manage(false));
  $("capture-form").addEventListener("submit", (event) => {
    event.preventDefault();
    captureAction("start_capture", { interface: $("interface").value, packets: Number($("packets").value) });
  });
  $("stop-capture").addEventListener("click", () => captureAction("stop_capture"));

  await refreshDependencies();
  captureAction("capture_status");
  // A reloaded page (or a restarted module) picks up an install still running.
  try {
    const last = await call("rebind_last_job");
    if (last && !last.is_complete) {
      showProgress(last);
      await follow(last.job_id);
      return;
    }
  } catch (err) {
    showError(err.message);
  }
  setState("idle");
}

init();
