// ferrymq web console: plain fetch() against the HTTP API (api/openapi.yaml).
// No build step, no external resources. Every value shown is inserted as
// text (never as HTML), so message contents cannot inject markup.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function status(msg, isError) {
  const s = $("status");
  s.textContent = msg || "";
  s.className = isError ? "error" : "";
}

// fetch JSON; throw an Error carrying the API's error code and message.
async function api(method, path, body, headers) {
  const res = await fetch(path, { method, body, headers: headers || {} });
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (e) {
    throw new Error(`${res.status}: ${text}`);
  }
  if (!res.ok) {
    const err = data && data.error ? data.error : { code: res.status, message: text };
    throw new Error(`${err.code}: ${err.message}`);
  }
  return data;
}

const enc = encodeURIComponent;

// A table body's one row saying it is empty, across span columns.
function emptyRow(rows, text, span) {
  const tr = el("tr");
  const td = el("td", text);
  td.colSpan = span;
  tr.append(td);
  rows.append(tr);
}

function button(text, onClick) {
  const b = el("button", text);
  b.type = "button";
  b.addEventListener("click", () => onClick().catch((e) => status(e.message, true)));
  return b;
}

async function loadBroker() {
  const b = await api("GET", "/v1/broker");
  $("broker-name").textContent = `${b.name} (${b.cluster}) ${b.role}`;
  const dl = $("broker-info");
  dl.replaceChildren();
  const rows = [
    ["Address", b.addr],
    ["Version", b.version],
    ["Flush", b.flushDiskType],
    ["Started", new Date(b.startedAt).toISOString()],
    ["Commit log write offset", b.commitLog.writeOffset],
    ["Commit log flushed offset", b.commitLog.flushedOffset],
    ["Segments", `${b.commitLog.segments} (${b.commitLog.bytes} bytes)`],
    ["Disk used", `${(b.disk.usedRatio * 100).toFixed(1)}%${b.disk.writable ? "" : " (not writable)"}`],
  ];
  for (const [k, v] of rows) {
    dl.append(el("dt", k), el("dd", v));
  }
}

async function deleteTopic(name) {
  if (!confirm(`Delete topic ${name} and its messages?`)) return;
  await api("DELETE", `/v1/topics/${enc(name)}`);
  status(`Deleted ${name}`);
  await loadTopics();
}

async function loadTopics() {
  const list = await api("GET", "/v1/topics");
  const rows = $("topic-rows");
  rows.replaceChildren();
  for (const t of list.topics) {
    const detail = await api("GET", `/v1/topics/${enc(t.topic)}`);
    const tr = el("tr");
    const offsets = detail.queueOffsets
      .map((q) => `${q.queueId}: ${q.minOffset}..${q.maxOffset}`)
      .join("  ");
    const pick = button("Use", async () => {
      $("publish-form").topic.value = t.topic;
      $("pull-form").topic.value = t.topic;
    });
    const actions = el("td");
    actions.append(pick, " ", button("Delete", () => deleteTopic(t.topic)));
    tr.append(el("td", t.topic), el("td", t.queues), el("td", t.perm), el("td", offsets, "mono"), actions);
    rows.append(tr);
  }
  if (list.topics.length === 0) emptyRow(rows, "No topics yet.", 5);
}

async function resetGroup(topic, group, where) {
  if (!confirm(`Move group ${group} on ${topic} to the ${where} message? What it has in flight is forgotten.`)) return;
  const body = JSON.stringify({ offset: where });
  await api("POST", `/v1/topics/${enc(topic)}/groups/${enc(group)}/reset`, body, {
    "Content-Type": "application/json",
  });
  status(`Reset ${group} on ${topic} to ${where}`);
  await loadGroups();
}


async function loadGroups() {
  const list = await api("GET", "/v1/groups");
  const rows = $("group-rows");
  rows.replaceChildren();
  for (const g of list.groups) {
    const st = await api("GET", `/v1/topics/${enc(g.topic)}/groups/${enc(g.group)}`);
    const queues = st.queues.map((q) => `${q.queueId}: ${q.consumedOffset}/${q.maxOffset}`).join("  ");
    const actions = el("td");
    actions.append(
      button("Earliest", () => resetGroup(g.topic, g.group, "earliest")),
      " ",
      button("Latest", () => resetGroup(g.topic, g.group, "latest")),
    );
    const tr = el("tr");
    tr.dataset.group = g.group;
    tr.dataset.topic = g.topic;
    tr.append(el("td", g.group), el("td", g.topic), el("td", st.fifo ? "yes" : "no"),
      el("td", st.lag, "lag"), el("td", st.inFlight), el("td", queues, "mono"), actions);
    rows.append(tr);
  }
  if (list.groups.length === 0) emptyRow(rows, "No consumer groups yet: they appear with their first receive.", 7);
}

async function saveGroup(ev) {
  ev.preventDefault();
  const f = ev.target;
  const g = await api("PUT", `/v1/groups/${enc(f.group.value)}`, JSON.stringify({ fifo: f.fifo.checked }), {
    "Content-Type": "application/json",
  });
  status(`Saved group ${g.group} (FIFO ${g.fifo ? "on" : "off"})`);
  await loadGroups();
}

async function refresh() {
  try {
    await Promise.all([loadBroker(), loadTopics(), loadGroups()]);
    status("");
  } catch (e) {
    status(e.message, true);
  }
}

async function createTopic(ev) {
  ev.preventDefault();
  const f = ev.target;
  const body = JSON.stringify({ queues: Number(f.queues.value), perm: f.perm.value });
  const t = await api("PUT", `/v1/topics/${enc(f.topic.value)}`, body, { "Content-Type": "application/json" });
  status(`Saved topic ${t.topic} (${t.queues} queues, ${t.perm})`);
  await loadTopics();
}

async function publish(ev) {
  ev.preventDefault();
  const f = ev.target;
  const q = new URLSearchParams();
  for (const name of ["tag", "keys", "shardingKey", "delay"]) {
    if (f[name].value !== "") q.set(name, f[name].value);
  }
  const qs = q.toString() ? `?${q}` : "";
  const r = await api("POST", `/v1/topics/${enc(f.topic.value)}/messages${qs}`, f.body.value, {
    "Content-Type": "text/plain; charset=utf-8",
  });
  $("publish-result").textContent = JSON.stringify(r, null, 2);
  await loadTopics();
}

function bodyText(m) {
  return m.bodyEncoding === "text" ? m.body : `(base64) ${m.body}`;
}

async function pull(ev) {
  ev.preventDefault();
  const f = ev.target;
  const q = new URLSearchParams({ offset: f.offset.value, max: f.max.value, wait: f.wait.value });
  const r = await api("GET", `/v1/topics/${enc(f.topic.value)}/queues/${enc(f.queueId.value)}/messages?${q}`);
  const lost = r.gap ? ` Offsets ${r.gap.fromOffset}..${r.gap.toOffset - 1} are no longer retained (${r.gap.lost} lost).` : "";
  $("pull-offsets").textContent =
    `${r.messages.length} message(s); next offset ${r.nextOffset}, queue holds ${r.minOffset}..${r.maxOffset}.${lost}`;
  const rows = $("pull-rows");
  rows.replaceChildren();
  for (const m of r.messages) {
    const tr = el("tr");
    tr.append(
      el("td", m.queueOffset),
      el("td", m.msgId, "mono"),
      el("td", m.tag === null ? "" : m.tag),
      el("td", m.keys.join(", ")),
      el("td", new Date(m.storeTimestamp).toISOString()),
      el("td", bodyText(m), "body"),
    );
    rows.append(tr);
  }
  f.offset.value = r.nextOffset;
}

function guard(fn) {
  return (ev) => fn(ev).catch((e) => status(e.message, true));
}

$("refresh").addEventListener("click", refresh);
$("create-topic").addEventListener("submit", guard(createTopic));
$("publish-form").addEventListener("submit", guard(publish));
$("pull-form").addEventListener("submit", guard(pull));
$("group-form").addEventListener("submit", guard(saveGroup));
refresh();
