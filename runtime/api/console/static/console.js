// The job tickets web console: a client of /api/v1 like any other. Everything shown is set as text
// (textContent, createElement), never as HTML: job params, metadata and errors are user input.
"use strict";

(() => {
  const API = "/api/v1";
  const KEY_STORAGE = "jobtickets.apiKey"; // sessionStorage: this tab only
  const POLL_MS = 2000;
  const MAX_BACKOFF_MS = 30000;

  const $ = (id) => document.getElementById(id);

  const state = {
    key: null,
    cursors: [null], // the cursor of each page seen so far; the last is the current page's
    nextCursor: null,
    filters: { status: "", type: "", limit: "20" },
    jobId: null, // the job shown in the detail panel
    timer: null,
    backoffMs: POLL_MS,
    knownTypes: new Set(),
    statuses: new Map(), // jobId -> status as last shown, to announce changes
  };

  class ApiError extends Error {
    constructor(status, code, detail, retryAfterS) {
      super(detail);
      this.status = status;
      this.code = code;
      this.detail = detail;
      this.retryAfterS = retryAfterS;
    }
  }

  async function api(method, path) {
    const response = await fetch(API + path, {
      method,
      headers: { Authorization: "Bearer " + state.key, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
    });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const retryAfter = Number(response.headers.get("Retry-After")) || 0;
      const code = body && typeof body.error === "string" ? body.error : "http_" + response.status;
      const detail = body && typeof body.detail === "string" ? body.detail : response.statusText;
      throw new ApiError(response.status, code, detail, retryAfter);
    }
    return { status: response.status, body };
  }

  function describe(error) {
    if (error instanceof ApiError) {
      return error.status + " " + error.code + ": " + error.detail;
    }
    return "the API did not answer (" + error.message + ")";
  }

  function el(tag, text, attributes) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    return node;
  }

  function timeEl(value) {
    if (!value) return el("span", "—");
    return el("time", value, { datetime: value });
  }

  // Live regions are read out when their text changes: set it only then, so a steady state stays quiet.
  function say(id, text) {
    const node = $(id);
    if (node.textContent !== text) node.textContent = text;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function pretty(value) {
    return value === null || value === undefined ? "—" : JSON.stringify(value, null, 2);
  }

  // ---- sign in / out -------------------------------------------------------------------------------

  function showSignedIn(signedIn) {
    $("sign-in").hidden = signedIn;
    $("app").hidden = !signedIn;
    $("session").hidden = !signedIn;
  }

  async function signIn(key) {
    state.key = key;
    try {
      await api("GET", "/jobs?limit=1");
    } catch (error) {
      state.key = null;
      sessionStorage.removeItem(KEY_STORAGE);
      $("sign-in-error").textContent =
        error instanceof ApiError && error.status === 401 ? "That API key was refused." : describe(error);
      showSignedIn(false);
      return;
    }
    sessionStorage.setItem(KEY_STORAGE, key);
    $("sign-in-error").textContent = "";
    $("api-key").value = "";
    showSignedIn(true);
    refresh();
  }

  function signOut(message) {
    stopPolling();
    state.key = null;
    state.jobId = null;
    sessionStorage.removeItem(KEY_STORAGE);
    clear($("job-rows"));
    $("detail").hidden = true;
    showSignedIn(false);
    $("sign-in-error").textContent = message || "";
    $("api-key").focus();
  }

  // ---- the job list --------------------------------------------------------------------------------

  function listQuery() {
    const query = new URLSearchParams();
    if (state.filters.status) query.set("status", state.filters.status);
    if (state.filters.type) query.set("type", state.filters.type);
    query.set("limit", state.filters.limit);
    const cursor = state.cursors[state.cursors.length - 1];
    if (cursor) query.set("cursor", cursor);
    return "/jobs?" + query.toString();
  }

  function progressCell(job) {
    const progress = job.progress;
    if (!progress || typeof progress.fraction !== "number") return el("td", "—");
    const cell = el("td");
    const percent = Math.round(progress.fraction * 100);
    cell.appendChild(el("progress", percent + "%", { max: "100", value: String(percent), "aria-label": "progress" }));
    cell.appendChild(el("span", " " + percent + "%"));
    return cell;
  }

  function announceChanges(items) {
    const changed = items.filter((job) => state.statuses.has(job.jobId) && state.statuses.get(job.jobId) !== job.status);
    state.statuses = new Map(items.map((job) => [job.jobId, job.status]));
    if (changed.length === 0) return;
    const text =
      changed.length <= 3
        ? changed.map((job) => "Job " + job.jobId.slice(0, 8) + " is now " + job.status + ".").join(" ")
        : changed.length + " jobs changed status.";
    $("announcer").textContent = text;
  }

  function renderJobs(page) {
    announceChanges(page.items);
    const rows = $("job-rows");
    clear(rows);
    for (const job of page.items) {
      state.knownTypes.add(job.jobType);
      const row = el("tr", null, { "data-job-id": job.jobId, "data-status": job.status });
      const idCell = el("td");
      const open = el("button", job.jobId, { type: "button", class: "link", "aria-label": "open job " + job.jobId });
      open.addEventListener("click", () => openJob(job.jobId));
      idCell.appendChild(open);
      row.appendChild(idCell);
      row.appendChild(el("td", job.jobType));
      row.appendChild(el("td", job.status, { class: "status status-" + job.status }));
      row.appendChild(el("td", job.priority));
      row.appendChild(el("td", job.attempts));
      row.appendChild(progressCell(job));
      const created = el("td");
      created.appendChild(timeEl(job.createdAt));
      row.appendChild(created);
      const updated = el("td");
      updated.appendChild(timeEl(job.updatedAt));
      row.appendChild(updated);
      rows.appendChild(row);
    }
    $("no-jobs").hidden = page.items.length > 0;
    state.nextCursor = page.nextCursor;
    $("page-label").textContent = "Page " + state.cursors.length;
    $("page-newer").disabled = state.cursors.length <= 1;
    $("page-older").disabled = !page.nextCursor;
    const types = $("known-types");
    clear(types);
    for (const type of [...state.knownTypes].sort()) types.appendChild(el("option", null, { value: type }));
  }

  function renderStats(stats) {
    const queues = $("queue-rows");
    clear(queues);
    for (const queue of stats.queues) {
      const row = el("tr", null, { "data-priority": queue.priority });
      row.appendChild(el("th", queue.priority, { scope: "row" }));
      row.appendChild(el("td", queue.visible));
      row.appendChild(el("td", queue.inFlight));
      row.appendChild(el("td", queue.delayed));
      queues.appendChild(row);
    }
    const finished = $("throughput-rows");
    clear(finished);
    for (const [status, count] of Object.entries(stats.lastHour.counts)) {
      const row = el("tr", null, { "data-status": status });
      row.appendChild(el("th", status, { scope: "row" }));
      row.appendChild(el("td", stats.lastHour.complete ? count : "at least " + count));
      finished.appendChild(row);
    }
  }

  // ---- the detail panel ----------------------------------------------------------------------------

  function field(list, name, value) {
    list.appendChild(el("dt", name));
    const dd = el("dd");
    if (value instanceof Node) dd.appendChild(value);
    else dd.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
    list.appendChild(dd);
  }

  function renderJob(job) {
    $("detail-heading").textContent = "Job " + job.jobId;
    $("detail").setAttribute("data-job-id", job.jobId);
    $("detail").setAttribute("data-status", job.status);
    const fields = $("detail-fields");
    clear(fields);
    field(fields, "Status", job.status);
    field(fields, "Type", job.jobType);
    field(fields, "Priority", job.priority);
    field(fields, "Attempts", job.attempts);
    field(fields, "Cancel requested", job.cancelRequested ? "yes" : "no");
    if (job.runAt) field(fields, "Runs at", timeEl(job.runAt));
    field(fields, "Created", timeEl(job.createdAt));
    field(fields, "Updated", timeEl(job.updatedAt));
    field(fields, "Trace id", job.traceId);

    const progress = $("detail-progress");
    clear(progress);
    if (job.progress && typeof job.progress.fraction === "number") {
      const percent = Math.round(job.progress.fraction * 100);
      progress.appendChild(el("progress", percent + "%", { max: "100", value: String(percent), "aria-label": "progress" }));
      progress.appendChild(el("span", " " + percent + "%" + (job.progress.message ? " — " + job.progress.message : "")));
      if (job.progress.updatedAt) {
        progress.appendChild(el("span", " (at "));
        progress.appendChild(timeEl(job.progress.updatedAt));
        progress.appendChild(el("span", ")"));
      }
    } else {
      progress.textContent = "none reported";
    }

    const timeline = $("detail-timeline");
    clear(timeline);
    const steps = Object.entries(job.transitions || {}).sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
    for (const [status, at] of steps) {
      const item = el("li", null, { "data-status": status });
      item.appendChild(el("span", status + " "));
      item.appendChild(timeEl(at));
      timeline.appendChild(item);
    }
    $("detail-error").textContent = pretty(job.error);
    $("detail-result").textContent = pretty(job.result);
    $("detail-params").textContent = pretty(job.params);
    $("detail-metadata").textContent = pretty(job.metadata);
  }

  async function loadJob() {
    if (!state.jobId) return;
    const { body } = await api("GET", "/jobs/" + encodeURIComponent(state.jobId));
    renderJob(body);
  }

  async function openJob(jobId) {
    state.jobId = jobId;
    $("action-result").textContent = "";
    $("detail").hidden = false;
    try {
      await loadJob();
    } catch (error) {
      $("action-result").textContent = describe(error);
    }
    $("detail-heading").focus();
  }

  async function act(action) {
    const jobId = state.jobId;
    if (!jobId) return;
    const result = $("action-result");
    result.textContent = action + " " + jobId + "…";
    try {
      const { status, body } = await api("POST", "/jobs/" + encodeURIComponent(jobId) + "/" + action);
      result.textContent = action + ": " + status + ", the job is " + body.status + (body.cancelRequested ? " (cancel requested)" : "");
      renderJob(body);
    } catch (error) {
      result.textContent = action + " refused: " + describe(error);
      if (error instanceof ApiError && error.status === 401) signOut("The API key stopped working; sign in again.");
    }
    refresh();
  }

  // ---- live refresh --------------------------------------------------------------------------------

  function stopPolling() {
    if (state.timer !== null) clearTimeout(state.timer);
    state.timer = null;
  }

  function schedule(delayMs) {
    stopPolling();
    if (!state.key || !$("live-toggle").checked || document.hidden) return;
    state.timer = setTimeout(refresh, delayMs);
  }

  let refreshing = false;
  let again = false; // asked for while a refresh was running (a new page or filter): run once more after it

  async function settled(promise) {
    try {
      return { ok: true, value: await promise };
    } catch (error) {
      return { ok: false, error };
    }
  }

  async function refresh() {
    if (!state.key) return;
    if (refreshing) {
      again = true;
      return;
    }
    refreshing = true;
    again = false;
    stopPolling();
    try {
      // Each part on its own: the stats failing does not hide the list, nor the reverse.
      const [list, stats] = await Promise.all([settled(api("GET", listQuery())), settled(api("GET", "/stats"))]);
      const detail = state.jobId ? await settled(loadJob()) : { ok: true };
      if (list.ok) renderJobs(list.value.body);
      if (stats.ok) renderStats(stats.value.body);
      say("list-error", list.ok ? "" : "Jobs: " + describe(list.error));
      say("stats-error", stats.ok ? "" : "Stats: " + describe(stats.error));
      const failures = [list, stats, detail].filter((part) => !part.ok).map((part) => part.error);
      if (failures.some((error) => error instanceof ApiError && error.status === 401)) {
        signOut("The API key stopped working; sign in again.");
        return;
      }
      if (!detail.ok) {
        if (detail.error instanceof ApiError && detail.error.status === 404) {
          state.jobId = null; // gone (retention): the list goes on refreshing
          $("detail").hidden = true;
        } else {
          say("action-result", "Job: " + describe(detail.error));
        }
      }
      if (failures.length === 0) {
        state.backoffMs = POLL_MS;
        $("last-updated").textContent = "Updated " + new Date().toLocaleTimeString();
        say("live-status", "Live: refreshing every " + POLL_MS / 1000 + " s");
        schedule(POLL_MS);
      } else {
        const retryAfterMs = Math.max(0, ...failures.map((error) => (error.retryAfterS || 0) * 1000));
        state.backoffMs = Math.min(MAX_BACKOFF_MS, Math.max(state.backoffMs * 2, retryAfterMs));
        say("live-status", "Refresh failed; trying again in " + Math.round(state.backoffMs / 1000) + " s");
        schedule(state.backoffMs);
      }
    } finally {
      refreshing = false;
      if (again) refresh();
    }
  }

  function onVisibility() {
    if (document.hidden) {
      stopPolling();
      say("live-status", "Paused while the tab is hidden");
    } else if (state.key && $("live-toggle").checked) {
      refresh();
    }
  }

  // ---- wiring --------------------------------------------------------------------------------------

  async function loadStatuses() {
    // The statuses come from the API's own schema, so the filter always offers exactly what it accepts.
    try {
      const response = await fetch("/openapi.json", { cache: "no-store", credentials: "omit" });
      const schema = await response.json();
      const statuses = (((schema.components || {}).schemas || {}).JobStatus || {}).enum || [];
      for (const status of statuses) $("filter-status").appendChild(el("option", status, { value: status }));
    } catch (_) {
      // Without the schema the filter offers "any" only; the list still works.
    }
  }

  function start() {
    loadStatuses();
    $("sign-in-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("api-key").value.trim();
      if (key) signIn(key);
    });
    $("sign-out").addEventListener("click", () => signOut("Signed out."));
    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      state.filters = {
        status: $("filter-status").value,
        type: $("filter-type").value.trim(),
        limit: $("filter-limit").value,
      };
      state.cursors = [null];
      state.statuses = new Map();
      refresh();
    });
    $("page-older").addEventListener("click", () => {
      if (!state.nextCursor) return;
      state.cursors.push(state.nextCursor);
      refresh();
    });
    $("page-newer").addEventListener("click", () => {
      if (state.cursors.length > 1) state.cursors.pop();
      refresh();
    });
    $("refresh-now").addEventListener("click", () => refresh());
    $("live-toggle").addEventListener("change", () => {
      if ($("live-toggle").checked) refresh();
      else {
        stopPolling();
        say("live-status", "Live refresh off");
      }
    });
    $("job-cancel").addEventListener("click", () => act("cancel"));
    $("job-retry").addEventListener("click", () => act("retry"));
    $("detail-close").addEventListener("click", () => {
      state.jobId = null;
      $("detail").hidden = true;
    });
    document.addEventListener("visibilitychange", onVisibility);
    const saved = sessionStorage.getItem(KEY_STORAGE);
    if (saved) signIn(saved);
    else $("api-key").focus();
  }

  start();
})();
