/* Cross-sell dashboard: reads /dashboard/api/{panel} with the admin key (sessionStorage, x-api-key header)
   and draws each panel with Chart.js (shipped with the service). Data is only ever set as text, never HTML. */
"use strict";

(function () {
  const KEY = "crosssell.dashboard.adminKey";
  const PANELS = ["overview", "segments", "lifecycle", "campaigns", "kpis", "experiments", "complements"];
  const COLORS = ["#0a58b5", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c", "#5c940d",
                  "#364fc7", "#a61e4d", "#495057", "#087f5b"];
  const REASONS = ["recipients", "holdout", "consent", "suppression", "erased", "frequency_cap", "no_picks"];
  const charts = {};
  const $ = (id) => document.getElementById(id);

  function status(text, kind) {
    const el = $("status");
    el.textContent = text || "";
    el.dataset.kind = kind || "";
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
    return node;
  }

  const pct = (v, d = 1) => (v == null ? "–" : (100 * v).toFixed(d) + " %");
  const num = (v, d = 0) => (v == null ? "–" : Number(v).toLocaleString("en-US", {maximumFractionDigits: d, minimumFractionDigits: d}));
  const label = (s) => String(s).replace(/_/g, " ");

  function table(id, head, rows) {
    const t = $(id);
    t.replaceChildren(el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {scope: "col"}, h)))),
      el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((c) => el("td", {}, c))))));
  }

  function draw(id, config) {
    if (charts[id]) charts[id].destroy();
    config.options = Object.assign({responsive: true, maintainAspectRatio: false, animation: false}, config.options || {});
    charts[id] = new Chart($(id), config);
    return charts[id];
  }

  async function fetchPanel(name) {
    const r = await fetch("/dashboard/api/" + name, {headers: {"x-api-key": sessionStorage.getItem(KEY) || ""},
                                                     cache: "no-store"});
    const body = await r.json().catch(() => ({}));
    if (!r.ok) {
      const err = new Error(body.error || ("HTTP " + r.status));
      err.status = r.status;
      throw err;
    }
    return body;
  }

  // --------------------------------------------------------------------------------------- panels
  const render = {
    overview(d) {
      $("model-version").textContent = d.model_version || "–";
      $("data-source").textContent = d.data_source + " (" + num(d.customers) + " customers, " + num(d.purchases) +
        " purchases to " + (d.last_purchase || "–").slice(0, 10) + ")";
      $("campaigns-note").textContent = "Consent: " + d.consent + ".";
      return 1;
    },

    segments(d) {
      const rows = d.value_segments;
      draw("chart-segments", {
        type: "bar",
        data: {labels: rows.map((r) => label(r.segment)), datasets: [
          {label: "customers", data: rows.map((r) => r.customers), backgroundColor: COLORS[0], yAxisID: "y"},
          {label: "revenue share (%)", data: rows.map((r) => 100 * r.revenue_share), backgroundColor: COLORS[1], yAxisID: "y1"},
        ]},
        options: {scales: {y: {title: {display: true, text: "customers"}},
                           y1: {position: "right", min: 0, max: 100, grid: {drawOnChartArea: false},
                                title: {display: true, text: "revenue share (%)"}}}},
      });
      $("segments-note").textContent = num(d.customers) + " customers, revenue " + num(d.revenue) + " as of " +
        String(d.now).slice(0, 10) + " (RFM value segments; lifecycle stages below).";
      table("segments-table", ["segment", "customers", "share", "revenue", "rev. share", "avg spend", "avg orders", "avg days since"],
        rows.map((r) => [label(r.segment), num(r.customers), pct(r.customer_share), num(r.revenue), pct(r.revenue_share),
                         num(r.mean_monetary, 2), num(r.mean_frequency, 1), num(r.mean_recency_days)]));
      return rows.length;
    },

    lifecycle(d) {
      const stages = d.stages;
      const froms = ["not_yet_customer", ...stages];
      const datasets = froms.map((f, i) => ({
        label: "was " + label(f), backgroundColor: COLORS[i % COLORS.length],
        data: stages.map((s) => (d.transitions.find((t) => t.from === f && t.to === s) || {customers: 0}).customers),
      })).filter((ds) => ds.data.some((v) => v > 0));
      draw("chart-lifecycle", {
        type: "bar", data: {labels: stages.map(label), datasets},
        options: {scales: {x: {stacked: true}, y: {stacked: true, title: {display: true, text: "customers now"}}},
                  plugins: {legend: {position: "bottom"}}},
      });
      $("lifecycle-note").textContent = "Stage now (" + String(d.now).slice(0, 10) + ") by stage " + d.flow_days +
        " days before (" + String(d.before).slice(0, 10) + ").";
      table("lifecycle-table", ["stage", "before", "now", "change"],
        d.counts.map((c) => [label(c.stage), num(c.before), num(c.now), (c.now - c.before >= 0 ? "+" : "") + num(c.now - c.before)]));
      return d.transitions.length;
    },

    campaigns(d) {
      const ok = d.campaigns.filter((c) => !c.error);
      draw("chart-campaigns", {
        type: "bar",
        data: {labels: ok.map((c) => c.name), datasets: REASONS.map((r, i) => ({
          label: label(r), backgroundColor: COLORS[i % COLORS.length],
          data: ok.map((c) => (r === "recipients" ? c.recipients : c.excluded[r] || 0)),
        }))},
        options: {indexAxis: "y", scales: {x: {stacked: true, title: {display: true, text: "customers in the audience"}},
                                           y: {stacked: true}}, plugins: {legend: {position: "bottom"}}},
      });
      const cards = d.campaigns.map((c) => {
        const card = el("article", {class: "card", "data-campaign": c.name});
        card.append(el("h3", {}, c.name), el("p", {class: "muted"}, c.description || ""));
        if (c.error) {
          card.dataset.error = "true";
          card.append(el("p", {class: "error"}, c.error));
          return card;
        }
        card.append(el("p", {class: "counts"},
          "audience " + num(c.audience) + " · recipients " + num(c.recipients) + " · holdout " + num(c.controls) +
          " · left out for consent " + num(c.excluded.consent) + " · strategy " + c.strategy +
          (c.experiment ? " · experiment " + c.experiment : "")));
        if (c.arms) card.append(el("p", {class: "muted"}, "arms: " + c.arms.map((a) => a.arm + " " + num(a.customers)).join(", ")));
        const list = el("ol", {class: "preview"});
        for (const p of c.preview) {
          const li = el("li", {"data-customer": p.customer_id}, el("strong", {}, p.customer_id));
          const picks = el("ul", {});
          for (const k of p.picks) picks.append(el("li", {"data-reason": k.reason}, k.name + " — ", el("em", {}, k.reason_text || label(k.reason))));
          li.append(picks);
          list.append(li);
        }
        card.append(c.preview.length ? list : el("p", {class: "muted"}, "no recipients to preview"));
        return card;
      });
      $("campaign-cards").replaceChildren(...cards);
      $("campaigns-note").textContent += " Planned now as of " + String(d.now).slice(0, 10) + ", nothing is sent.";
      return d.campaigns.length;
    },

    kpis(d) {
      const series = d.series;
      const days = [...new Set(series.flatMap((s) => s.points.map((p) => p.day)))].sort();
      const name = (s) => s.campaign + " · " + s.arm + " · " + (s.model_version || "–");
      const line = (field, scale) => series.map((s, i) => ({
        label: name(s), borderColor: COLORS[i % COLORS.length], backgroundColor: COLORS[i % COLORS.length],
        data: days.map((day) => { const p = s.points.find((q) => q.day === day); return p ? scale * p[field] : null; }),
        spanGaps: true,
      }));
      draw("chart-kpis-conversion", {type: "line", data: {labels: days, datasets: line("conversion", 100)},
        options: {scales: {y: {title: {display: true, text: "conversion (%)"}, min: 0}}, plugins: {legend: {position: "bottom"}}}});
      draw("chart-kpis-revenue", {type: "line", data: {labels: days, datasets: line("revenue_per_customer", 1)},
        options: {scales: {y: {title: {display: true, text: "revenue per customer"}, min: 0}}, plugins: {legend: {position: "bottom"}}}});
      $("kpis-note").textContent = series.length ? "Per send day: customers with any purchase within " + d.window_days +
        " days after the send (campaigns) or an attributed purchase (service experiments)." : "No sends or experiment exposures in the store yet.";
      table("kpis-table", ["campaign / experiment", "arm", "model version", "days", "customers", "conversion", "revenue / customer"],
        series.map((s) => {
          const c = s.points.reduce((a, p) => a + p.customers, 0), v = s.points.reduce((a, p) => a + p.converted, 0);
          const rev = s.points.reduce((a, p) => a + p.revenue, 0);
          return [s.campaign, s.arm, s.model_version || "–", s.points.length, num(c), pct(c ? v / c : null, 2), num(c ? rev / c : null, 2)];
        }));
      return series.length;
    },

    experiments(d) {
      const list = $("experiment-list");
      list.replaceChildren();
      d.experiments.forEach((x, n) => {
        const box = el("article", {class: "experiment", "data-experiment": x.name});
        box.append(el("h3", {}, x.name + " (" + x.kind + ")"));
        if (x.error) { box.append(el("p", {class: "error"}, x.error)); list.append(box); return; }
        box.append(el("p", {class: "muted"}, "control arm " + x.control + " · primary metric " + label(x.primary_metric) +
          " · alpha " + x.alpha + (x.models.control_model ? " · models " + x.models.control_model + " vs " + x.models.challenger_model : "")));
        const rows = x.rows.filter((r) => r.metric === x.primary_metric);
        const scale = ["ctr", "conversion"].includes(x.primary_metric) ? 100 : 1;
        const canvas = el("canvas", {id: "chart-exp-" + n, role: "img", ariaLabel: "Primary metric per arm with 95 % interval"});
        box.append(el("div", {class: "chart-box short"}, canvas));
        for (const dcs of x.decisions) box.append(el("p", {class: dcs.wins ? "win" : "muted", "data-wins": String(dcs.wins)},
          "Decision for " + dcs.arm + ": " + (dcs.wins ? "WINS" : "does not win") + " — " + dcs.reason));
        const t = el("table", {class: "data", id: "exp-table-" + n});
        box.append(t);
        for (const note of x.notes) box.append(el("p", {class: "muted"}, "note: " + note));
        list.append(box);
        draw(canvas.id, {
          type: "bar",
          data: {labels: rows.map((r) => r.arm), datasets: [
            {label: "95 % interval", data: rows.map((r) => [scale * r.low, scale * r.high]), backgroundColor: "rgba(10,88,181,0.35)",
             borderColor: COLORS[0], borderWidth: 1, barPercentage: 0.5},
            {type: "scatter", label: "estimate", data: rows.map((r, i) => ({x: r.arm, y: scale * r.value})),
             backgroundColor: COLORS[1], pointRadius: 6},
          ]},
          options: {indexAxis: "x", scales: {y: {title: {display: true, text: label(x.primary_metric) + (scale === 100 ? " (%)" : "")}}},
                    plugins: {legend: {position: "bottom"}}},
        });
        table(t.id, ["arm", "customers", "metric", "value", "95 % CI", "diff vs control", "95 % CI of diff", "p", "verdict"],
          x.rows.map((r) => {
            const s = ["ctr", "conversion"].includes(r.metric), f = (v) => (v == null ? "–" : s ? pct(v, 2) : num(v, 2));
            return [r.arm, num(r.customers), label(r.metric), f(r.value), "[" + f(r.low) + ", " + f(r.high) + "]",
                    r.diff == null ? "–" : f(r.diff), r.diff_low == null ? "–" : "[" + f(r.diff_low) + ", " + f(r.diff_high) + "]",
                    r.p_value == null ? "–" : Number(r.p_value).toPrecision(3), r.verdict + (r.note ? ": " + r.note : "")];
          }));
      });
      $("experiments-note").textContent = d.experiments.length ? "Tests: " + Object.entries(d.tests).map(([k, v]) => label(k) + ": " + v).join("; ") + "."
        : "No experiments in the store yet (recsys serve --challenger …, or a campaign with arms).";
      return d.experiments.length;
    },

    complements(d) {
      if (!d.available) { $("complements-note").textContent = d.reason; table("overrides-table", [], []); return 0; }
      const cats = d.categories, idx = Object.fromEntries(cats.map((c, i) => [c, i]));
      const group = (pred) => d.edges.filter(pred).map((e) => ({x: idx[e.source], y: idx[e.target], r: 3 + 2.5 * Math.min(e.lift, 6), e}));
      const tick = {autoSkip: false, callback: (v) => cats[v] || ""};
      const every = (axis) => { axis.ticks = cats.map((_, i) => ({value: i})); };
      draw("chart-complements", {
        type: "bubble",
        data: {datasets: [
          {label: "learned", data: group((e) => e.origin === "learned" && !e.pinned), backgroundColor: "rgba(10,88,181,0.55)"},
          {label: "override (added)", data: group((e) => e.origin !== "learned" && !e.pinned), backgroundColor: "rgba(217,72,15,0.7)"},
          {label: "pinned", data: group((e) => e.pinned), backgroundColor: "rgba(43,138,62,0.75)"},
        ]},
        options: {scales: {x: {min: -0.5, max: cats.length - 0.5, ticks: tick, afterBuildTicks: every,
                               title: {display: true, text: "bought (source category)"}},
                           y: {min: -0.5, max: cats.length - 0.5, ticks: tick, afterBuildTicks: every,
                               title: {display: true, text: "suggested next (complement)"}}},
                  plugins: {legend: {position: "bottom"}, tooltip: {callbacks: {label: (c) => {
                    const e = c.raw.e; return e.source + " → " + e.target + ": lift " + e.lift.toFixed(2) + ", rank " + e.rank + " (" + e.origin + ")"; }}}}},
      });
      $("complements-note").textContent = d.edges.length + " edges (top 5 per category); bubble size = lift. Overrides from " +
        (d.overrides_source || "none") + "; 'in effect' says whether the served model obeys them (it does once trained with them).";
      table("overrides-table", ["source", "action", "target", "lift", "in effect"],
        d.overrides.map((o) => [o.source, o.action, o.target, o.lift == null ? "–" : o.lift, o.in_effect ? "yes" : "no"]));
      return d.edges.length;
    },
  };

  async function load(name) {
    const section = $("panel-" + name);
    if (section) { section.dataset.state = "loading"; section.setAttribute("aria-busy", "true"); }
    try {
      const data = await fetchPanel(name);
      const count = render[name](data);
      if (section) { section.dataset.state = "ready"; section.dataset.items = String(count); }
    } catch (err) {
      if (err.status === 401 || err.status === 403) throw err;
      if (section) { section.dataset.state = "error"; section.append(el("p", {class: "error"}, String(err.message || err))); }
    } finally {
      if (section) section.removeAttribute("aria-busy");
    }
  }

  async function open() {
    $("login-panel").hidden = true;
    $("board").hidden = false;
    $("sign-out").hidden = false;
    status("Loading …");
    try {
      await load("overview");
      await Promise.all(PANELS.slice(1).map(load));
      const failed = PANELS.slice(1).filter((p) => $("panel-" + p).dataset.state !== "ready");
      status(failed.length ? "Some panels failed: " + failed.join(", ") : "Up to date.", failed.length ? "error" : "ok");
      document.body.dataset.ready = "true";
    } catch (err) {
      sessionStorage.removeItem(KEY);
      close();
      status(err.status === 403 ? "That is not the admin key." : "Wrong or missing key.", "error");
    }
  }

  function close() {
    $("login-panel").hidden = false;
    $("board").hidden = true;
    $("sign-out").hidden = true;
    document.body.dataset.ready = "false";
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login").addEventListener("submit", (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(KEY, $("api-key").value);
      $("api-key").value = "";
      open();
    });
    $("sign-out").addEventListener("click", () => { sessionStorage.removeItem(KEY); close(); status("Signed out."); });
    if (sessionStorage.getItem(KEY)) open(); else close();
  });
})();
