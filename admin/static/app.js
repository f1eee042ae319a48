// UnitedCron admin: a little vanilla JavaScript — confirmations, the rule preview, live output,
// the workflow form's rule filter.
"use strict";

// Forms with data-confirm ask before they post (delete, kill).
document.addEventListener("submit", (event) => {
  const text = event.target.dataset ? event.target.dataset.confirm : undefined;
  if (text && !window.confirm(text)) event.preventDefault();
});

// The rule form: next fire times, refreshed as the expression or the time zone changes.
function setupPreview() {
  const box = document.getElementById("preview");
  if (!box) return;
  const rule = document.getElementById("f-rule");
  const zone = document.getElementById("f-timezone");
  const daemon = document.getElementById("f-is_daemon");
  const list = document.getElementById("preview-list");
  const problem = document.getElementById("preview-error");
  const warning = document.getElementById("preview-warning");
  // the fields that move the real fire times: H and jitter need the rule id, calendars the group
  const timing = ["calendar", "calendar_mode", "calendar_fallback", "jitter_s", "gid"]
    .map((name) => document.getElementById("f-" + name)).filter((input) => input);
  let timer = null;
  let asked = 0;
  async function refresh() {
    const mine = ++asked;
    list.replaceChildren();
    problem.textContent = "";
    warning.textContent = "";
    warning.hidden = true;
    if (daemon.checked) { problem.textContent = "A daemon has no schedule: it runs all the time."; return; }
    if (!rule.value.trim()) return;
    const query = new URLSearchParams({ rule: rule.value, timezone: zone.value || "UTC" });
    for (const input of timing) query.set(input.name, input.value);
    if (box.dataset.id) query.set("id", box.dataset.id);
    const answer = await fetch(box.dataset.url + "?" + query, { credentials: "same-origin" });
    const body = await answer.json();
    if (mine !== asked) return; // a newer request is on its way
    if (body.error) { problem.textContent = body.error.field + ": " + body.error.reason; return; }
    if (body.warning) { warning.textContent = body.warning; warning.hidden = false; }
    for (const fire of body.fires) {
      const item = document.createElement("li");
      item.textContent = fire;
      list.appendChild(item);
    }
  }
  for (const input of [rule, zone, daemon, ...timing]) {
    for (const kind of ["input", "change"]) {
      input.addEventListener(kind, () => { clearTimeout(timer); timer = setTimeout(refresh, 250); });
    }
  }
  // The group chosen limits the agents offered.
  const group = document.getElementById("f-gid");
  function showAgents() {
    for (const option of document.querySelectorAll(".agent-option")) {
      option.hidden = group.value !== "" && option.dataset.gid !== group.value;
    }
  }
  group.addEventListener("change", showAgents);
  showAgents();
}

// A run's page: tail its output with server-sent events until the run is over.
function setupTail() {
  const out = document.getElementById("output");
  if (!out || !out.dataset.stream) return;
  const source = new EventSource(out.dataset.stream);
  source.addEventListener("output", (event) => {
    const atBottom = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
    out.appendChild(document.createTextNode(JSON.parse(event.data).text));
    if (atBottom) out.scrollTop = out.scrollHeight;
  });
  source.addEventListener("end", () => {
    source.close();
    window.location.reload(); // the finished run's page has its code, duration and kept output
  });
}

// The workflow form: only the chosen group's rules are offered as steps.
function setupFlowForm() {
  const form = document.getElementById("workflow-form");
  if (!form) return;
  const group = document.getElementById("f-gid");
  function showRules() {
    for (const option of form.querySelectorAll(".node-option")) {
      option.hidden = group.value !== "" && option.dataset.gid !== group.value;
    }
  }
  group.addEventListener("change", showRules);
  showRules();
}

document.addEventListener("DOMContentLoaded", () => { setupPreview(); setupTail(); setupFlowForm(); });
