// The live dashboard of `inferstack dev`: polls /_local/metrics every second and redraws its Chart.js plots.
"use strict";

const WINDOW_S = 120;
const COLORS = {
  "2xx": "#2e7d32", "4xx": "#ef6c00", "429": "#8e24aa", "5xx": "#c62828", requests: "#1565c0",
  p50: "#64b5f6", p95: "#1e88e5", p99: "#0d47a1", inference_p50: "#81c784", inference_p99: "#2e7d32",
  queued: "#fb8c00", running: "#1e88e5", succeeded: "#43a047", failed: "#e53935", dead_letters: "#6d4c41",
  mean: "#26a69a", max: "#00695c", queue_depth: "#ab47bc", visible: "#fb8c00", in_flight: "#1e88e5",
  delivered: "#43a047", retried: "#fdd835", gave_up: "#e53935",
};
const charts = new Map();

function panel(parent, id, title) {
  const div = document.createElement("div");
  div.className = "panel";
  div.id = id;
  div.innerHTML = `<h3>${title}</h3><div class="chart"><canvas></canvas></div>`;
  parent.appendChild(div);
  return div.querySelector("canvas");
}

function chart(parent, id, title, series, yTitle, y1Title) {
  // series: [{key, label, right?, dashed?}]
  if (charts.has(id)) return charts.get(id);
  const canvas = panel(parent, id, title);
  const scales = {
    x: { ticks: { maxTicksLimit: 6 } },
    y: { beginAtZero: true, title: { display: true, text: yTitle } },
  };
  if (y1Title) scales.y1 = { beginAtZero: true, position: "right", grid: { drawOnChartArea: false },
                             title: { display: true, text: y1Title } };
  const c = new Chart(canvas, {
    type: "line",
    data: { labels: [], datasets: series.map((s) => ({
      label: s.label, data: [], borderColor: COLORS[s.color || s.key] || "#455a64", borderWidth: 1.5,
      backgroundColor: COLORS[s.color || s.key] || "#455a64", pointRadius: 1.5, spanGaps: true,
      borderDash: s.dashed ? [4, 3] : [], yAxisID: s.right ? "y1" : "y" })) },
    options: { animation: false, responsive: true, maintainAspectRatio: false, interaction: { intersect: false },
               plugins: { legend: { labels: { boxWidth: 10, font: { size: 11 } } } }, scales },
  });
  charts.set(id, c);
  return c;
}

function draw(c, labels, values) {
  c.data.labels = labels;
  values.forEach((v, i) => { c.data.datasets[i].data = v; });
  c.update("none");
}

function recent(values, n = 5) {
  const tail = values.slice(-n).filter((v) => v !== null);
  return tail.length ? tail.reduce((a, b) => a + b, 0) / tail.length : 0;
}

function last(values) {
  for (let i = values.length - 1; i >= 0; i -= 1) if (values[i] !== null) return values[i];
  return null;
}

function safe(name) { return name.replace(/[^A-Za-z0-9_-]/g, "_"); }

function modelSection(name, tier) {
  const id = `model-${safe(name)}`;
  let section = document.getElementById(id);
  if (section) return section;
  section = document.createElement("section");
  section.id = id;
  section.className = "model";
  section.dataset.model = name;
  section.innerHTML = `<h2>${name} <span class="tier">(${tier})</span></h2>
    <div class="numbers"><span>req/s <b class="rps">0</b></span><span>p99 ms <b class="p99">–</b></span>
    <span>errors/s <b class="errors">0</b></span></div><div class="row"></div>`;
  document.getElementById("models").appendChild(section);
  return section;
}

function render(m) {
  const labels = m.t.map((t) => new Date(t * 1000).toLocaleTimeString());
  document.getElementById("total-requests").textContent = m.requests;
  document.getElementById("total-rps").textContent = recent(m.total.requests).toFixed(1);

  const overview = document.getElementById("overview");
  draw(chart(overview, "panel-status", "Requests per second by status",
             ["requests", "2xx", "4xx", "429", "5xx"].map((k) => ({ key: k, label: k })), "req/s"),
       labels, ["requests", "2xx", "4xx", "429", "5xx"].map((k) => m.total[k]));

  for (const [name, s] of Object.entries(m.models)) {
    const section = modelSection(name, s.tier);
    const row = section.querySelector(".row");
    const id = safe(name);
    section.querySelector(".rps").textContent = recent(s.requests).toFixed(1);
    const p99 = last(s.latency.p99);
    section.querySelector(".p99").textContent = p99 === null ? "–" : p99.toFixed(1);
    section.querySelector(".errors").textContent = (recent(s["4xx"]) + recent(s["429"]) + recent(s["5xx"])).toFixed(1);
    draw(chart(row, `panel-${id}-requests`, `${name}: requests per second, 4xx / 429 / 5xx`,
               ["requests", "4xx", "429", "5xx"].map((k) => ({ key: k, label: k })), "req/s"),
         labels, ["requests", "4xx", "429", "5xx"].map((k) => s[k]));
    draw(chart(row, `panel-${id}-latency`, `${name}: latency p50 / p95 / p99 (ms)`, [
      { key: "p50", label: "gateway p50" }, { key: "p95", label: "gateway p95" }, { key: "p99", label: "gateway p99" },
      { key: "inference_p50", label: "model p50", dashed: true },
      { key: "inference_p99", label: "model p99", dashed: true }], "ms"),
    labels, [s.latency.p50, s.latency.p95, s.latency.p99, s.inference.p50, s.inference.p99]);
    draw(chart(row, `panel-${id}-jobs`, `${name}: jobs by state`, [
      { key: "queued", label: "queued" }, { key: "running", label: "running" },
      { key: "dead_letters", label: "dead letters" },
      { key: "succeeded", label: "succeeded /s", right: true }, { key: "failed", label: "failed /s", right: true }],
    "jobs", "jobs/s"),
    labels, [s.jobs.queued, s.jobs.running, s.jobs.dead_letters, s.jobs.succeeded, s.jobs.failed]);
    const answers = s.answers;
    if (s.tier === "cascade" || Object.values(answers).some((v) => v.some((x) => x))) {
      draw(chart(row, `panel-${id}-answers`, `${name}: cache, escalations, degraded`, [
        { key: "cache_hits", label: "cache hits", color: "succeeded" },
        { key: "cache_misses", label: "cache misses", color: "queued" },
        { key: "escalated", label: "escalated rows", color: "running" },
        { key: "degraded", label: "degraded", color: "failed" },
        { key: "circuit_open", label: "circuit open", color: "dead_letters" }], "per second"),
      labels, [answers.cache_hits, answers.cache_misses, answers.escalated, answers.degraded, answers.circuit_open]);
    }
    if (s.tier === "heavy") {
      draw(chart(row, `panel-${id}-batches`, `${name}: batch sizes and queue depth (container)`, [
        { key: "mean", label: "batch rows mean" }, { key: "max", label: "batch rows max" },
        { key: "queue_depth", label: "waiting requests", right: true }], "rows", "requests"),
      labels, [s.batch.mean, s.batch.max, s.batch.queue_depth]);
    }
  }

  const routes = document.getElementById("routes");
  for (const [name, r] of Object.entries(m.routes)) {
    draw(chart(routes, `panel-route-${safe(name)}`, name, [
      { key: "p50", label: "p50 ms" }, { key: "p95", label: "p95 ms" }, { key: "p99", label: "p99 ms" },
      { key: "requests", label: "req/s", right: true, dashed: true }], "ms", "req/s"),
    labels, [r.p50, r.p95, r.p99, r.requests]);
  }

  const queues = document.getElementById("queues");
  for (const [name, q] of Object.entries(m.queues)) {
    draw(chart(queues, `panel-queue-${safe(name)}`, `queue ${name}`, [
      { key: "visible", label: "waiting" }, { key: "in_flight", label: "in flight" }], "messages"),
    labels, [q.visible, q.in_flight]);
  }
}

async function poll() {
  try {
    const response = await fetch(`/_local/metrics?window=${WINDOW_S}`, { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
    document.getElementById("status").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    document.getElementById("status").textContent = `stack unreachable (${err.message}); retrying`;
  }
  setTimeout(poll, 1000);
}

poll();
