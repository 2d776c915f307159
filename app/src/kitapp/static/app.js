"use strict";
(function () {
  const form = document.getElementById("download-form");
  const input = document.getElementById("url");
  const message = document.getElementById("message");
  const tokenInput = document.getElementById("token");
  const TOKEN_KEY = "kitapp-api-token";
  const tbody = document.querySelector("table#jobs tbody");
  const FINAL = new Set(["SUCCESS", "FAILURE", "REVOKED"]);
  const polling = new Set();

  function details(job) {
    if (job.state === "SUCCESS" && job.result) {
      const r = job.result;
      return r.sha256 ? `${r.bytes} bytes, sha256 ${r.sha256}` : JSON.stringify(r);
    }
    return job.error || "";
  }

  function rowFor(job) {
    let row = tbody.querySelector(`tr[data-id="${job.id}"]`);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.id = job.id;
      for (const cls of ["id", "task", "state", "details"]) {
        const cell = document.createElement("td");
        cell.className = cls;
        row.appendChild(cell);
      }
      row.querySelector("td.id").textContent = job.id;
      tbody.prepend(row);
    }
    return row;
  }

  function render(job) {
    const row = rowFor(job);
    row.dataset.state = job.state;
    row.querySelector("td.task").textContent = job.task || "";
    row.querySelector("td.state").textContent = job.state;
    row.querySelector("td.details").textContent = details(job);
  }

  async function poll(id) {
    if (polling.has(id)) return;
    polling.add(id);
    try {
      for (;;) {
        const response = await fetch(`/api/jobs/${id}`, { headers: { Accept: "application/json" } });
        if (response.ok) {
          const job = await response.json();
          render(job);
          if (FINAL.has(job.state)) return;
        } else if (response.status === 404) {
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    } finally {
      polling.delete(id);
    }
  }

  // With API tokens, submitting and listing need one; polling a job by its id does not.
  function authHeaders() {
    const token = tokenInput.value.trim();
    return token ? { Authorization: `Bearer ${token}` } : {};
  }

  async function loadRecent() {
    const response = await fetch("/api/jobs?limit=20", { headers: authHeaders() });
    if (response.status === 401) {
      const body = await response.json().catch(() => ({}));
      message.textContent = body.error || "an API token is required";
      return;
    }
    if (!response.ok) return;
    const data = await response.json();
    for (const job of data.jobs.slice().reverse()) {
      render(job);
      if (!FINAL.has(job.state)) poll(job.id);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "";
    const response = await fetch("/api/jobs", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...authHeaders() },
      body: JSON.stringify({ task: "download", args: [input.value] }),
    });
    const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (response.status !== 202) {
      message.textContent = body.error || `HTTP ${response.status}`;
      return;
    }
    render({ id: body.id, task: body.task, state: body.state });
    poll(body.id);
  });

  tokenInput.value = sessionStorage.getItem(TOKEN_KEY) || "";
  tokenInput.addEventListener("change", () => {
    const token = tokenInput.value.trim();
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
    message.textContent = "";
    loadRecent();
  });

  loadRecent();
})();
