// The operator page: renders isobar's admin snapshot, then follows /api/v1/events. Text goes in with
// textContent only, so an object's name or reason can never become markup.
"use strict";

let current = null;

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function fill(tableId, rows, empty, columns) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren();
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    const td = cell(tr, empty, "empty");
    td.colSpan = columns;
    body.appendChild(tr);
  }
  for (const r of rows) body.appendChild(r);
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "";
}

function statusText(status) {
  return { VALID: "valid", INVALID: "invalid", ORPHANED: "orphaned" }[status] || status;
}

function setOptions(selectId, values) {
  const select = document.getElementById(selectId);
  const chosen = select.value;
  const keep = Array.from(select.options).slice(0, 1);
  select.replaceChildren(...keep);
  for (const v of values) {
    const o = document.createElement("option");
    o.value = v;
    o.textContent = v;
    select.appendChild(o);
  }
  select.value = values.includes(chosen) ? chosen : "";
}

function renderObjects(s) {
  const ns = document.getElementById("filter-namespace").value;
  const kind = document.getElementById("filter-kind").value;
  const status = document.getElementById("filter-status").value;
  const rows = s.objects
    .filter((o) => !ns || o.namespace === ns)
    .filter((o) => !kind || o.kind === kind)
    .filter((o) => !status || (status === "NOT_VALID" ? o.status !== "VALID" : o.status === status))
    .map((o) => {
      const tr = document.createElement("tr");
      tr.className = o.status;
      tr.dataset.object = `${o.kind}/${o.namespace}/${o.name}`;
      tr.dataset.status = o.status;
      cell(tr, statusText(o.status));
      cell(tr, o.kind);
      cell(tr, `${o.namespace}/${o.name}`, "mono");
      cell(tr, o.reason, "reason");
      return tr;
    });
  fill("objects", rows, "no objects match", 4);
  const errors = document.getElementById("source-errors");
  errors.replaceChildren(
    ...s.sourceErrors.map((e) => {
      const li = document.createElement("li");
      li.textContent = e;
      return li;
    }),
  );
}

function renderEnvoys(s) {
  const rows = s.envoys.map((e) => {
    const tr = document.createElement("tr");
    tr.dataset.node = e.nodeId;
    cell(tr, e.nodeId, "mono");
    cell(tr, e.envoyVersion);
    cell(tr, e.address, "mono");
    cell(tr, when(e.connectedSince));
    const behind = e.types
      .filter((t) => t.awaitingAck || t.lastNack)
      .map((t) => (t.lastNack ? `${t.type}: NACK (${t.lastNack})` : `${t.type}: awaiting ACK of ${t.sentVersion}`));
    cell(tr, e.inSync ? "in sync" : behind.join("; "), e.inSync ? "ok" : "lag");
    return tr;
  });
  fill("envoys", rows, "no Envoy connected", 5);
}

function renderNacks(s) {
  const rows = s.nackHistory
    .slice()
    .reverse()
    .map((n) => {
      const tr = document.createElement("tr");
      cell(tr, when(n.at));
      cell(tr, n.nodeId, "mono");
      cell(tr, n.type);
      cell(tr, n.rejectedVersion, "mono");
      cell(tr, n.message, "bad");
      return tr;
    });
  fill("nacks", rows, "Envoy rejected nothing", 5);
}

function renderRouting(s) {
  const endpoints = new Map(s.clusters.map((c) => [c.name, c.endpoints]));
  const rows = [];
  for (const vh of s.virtualHosts) {
    const listener = vh.listener ? ` (Gateway listener ${vh.listener})` : "";
    const host = `${vh.secure ? "https" : "http"}://${vh.host}${listener}`;
    const routes = vh.routes.length > 0 ? vh.routes : [{ match: "tcp", path: "", clusters: vh.tcpProxy, source: "" }];
    for (const r of routes) {
      const tr = document.createElement("tr");
      tr.dataset.host = vh.host;
      cell(tr, host, "mono");
      cell(tr, `${r.match} ${r.path}`, "mono");
      cell(tr, r.clusters.map((c) => `${c.cluster} (${c.weight})`).join(", "), "mono");
      cell(tr, r.clusters.flatMap((c) => endpoints.get(c.cluster) || []).join(", ") || "none", "mono");
      cell(tr, r.source, "mono");
      rows.push(tr);
    }
  }
  fill("routing", rows, "no hosts", 5);
}

function renderCounters(s) {
  const c = s.counters || {};
  const items = [
    ["generation", s.cacheGeneration],
    ["rebuilds", c.rebuilds],
    ["ACKs", c.acks],
    ["NACKs", c.nacks],
    ["refused TLS", c.tlsHandshakeFailures],
  ];
  document.getElementById("counters").replaceChildren(
    ...items.flatMap(([k, v]) => {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = String(v ?? 0);
      dd.id = `counter-${k.replace(/\s+/g, "-").toLowerCase()}`;
      return [dt, dd];
    }),
  );
}

function render(s) {
  const previous = current;
  current = s;
  setOptions("filter-namespace", [...new Set(s.objects.map((o) => o.namespace))].sort());
  setOptions("filter-kind", [...new Set(s.objects.map((o) => o.kind))].sort());
  renderCounters(s);
  renderObjects(s);
  renderEnvoys(s);
  renderNacks(s);
  renderRouting(s);
  if (!previous || previous.cacheGeneration !== s.cacheGeneration) {
    document.getElementById("dag").src = `/dag.svg?generation=${s.cacheGeneration}`;
  }
  document.body.dataset.generation = String(s.cacheGeneration);
}

function follow() {
  const live = document.getElementById("live");
  const events = new EventSource("/api/v1/events");
  events.addEventListener("snapshot", (e) => render(JSON.parse(e.data)));
  events.addEventListener("open", () => {
    live.textContent = "live";
    live.classList.remove("off");
  });
  // EventSource reconnects by itself; say so meanwhile.
  events.addEventListener("error", () => {
    live.textContent = "reconnecting…";
    live.classList.add("off");
  });
}

for (const id of ["filter-namespace", "filter-kind", "filter-status"]) {
  document.getElementById(id).addEventListener("change", () => current && renderObjects(current));
}
follow();
