/* Connection-pool dashboard: renders the admin API's numbers and refreshes them.
 *
 * It knows no kind of pool: the page's "cp-kinds" JSON (the registered kinds' descriptors) says which
 * groups of the stats response hold pools and how each kind's card reads its entry.
 *
 * No library and no network beyond our own API: cards are plain DOM, charts are
 * inline SVG. Every value is written with textContent (never innerHTML), so pool
 * names or error messages cannot inject markup. */
(function () {
  "use strict";

  var SVG_NS = "http://www.w3.org/2000/svg";
  var settings = JSON.parse(document.getElementById("cp-settings").textContent);
  var initial = JSON.parse(document.getElementById("cp-initial").textContent) || {};
  var kinds = JSON.parse(document.getElementById("cp-kinds").textContent);
  var state = {stats: initial.stats, health: null, history: null, server: null, timer: null, busy: false};

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else if (key === "className") node.className = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function svg(tag, attrs) {
    var node = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function ms(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    var value = seconds * 1000;
    return (value >= 100 ? value.toFixed(0) : value >= 1 ? value.toFixed(1) : value.toFixed(2)) + " ms";
  }

  function num(value) { return value === null || value === undefined ? "–" : String(value); }

  function lag(seconds) {
    return seconds === null || seconds === undefined ? "–" : Number(seconds).toFixed(2) + " s";
  }

  /* A value of an entry by a dotted path ("wait_time.p95", "pgbouncers.0"). */
  function valueAt(entry, path) {
    return path.split(".").reduce(function (value, key) {
      return value === null || value === undefined ? undefined : value[key];
    }, entry);
  }

  /* A card template ("pgbouncer {key}", "{pool}") filled from the entry; a list shows comma-separated. */
  function fill(template, entry, key) {
    return template.replace(/\{([\w.]+)\}/g, function (match, path) {
      var value = path === "key" ? key : valueAt(entry, path);
      if (value === null || value === undefined) return "";
      return Array.isArray(value) ? value.join(", ") : String(value);
    });
  }

  function sum(entry, paths) {
    return paths.reduce(function (total, path) { return total + (Number(valueAt(entry, path)) || 0); }, 0);
  }

  var FORMATS = {
    count: num,
    ms: ms,
    seconds: lag,
    yes_no: function (value) { return value === null || value === undefined ? "–" : value ? "yes" : "no"; }
  };

  /* Every pool of a stats response as a card: the page's kinds say which group holds which kinds and how each
   * kind's card reads its entry (the descriptors' cards); an entry of a kind nobody described gets card "*". */
  function allPools(stats) {
    var pools = [];
    if (!stats) return pools;
    kinds.groups.forEach(function (group) {
      var entries = stats[group.group] || {};
      Object.keys(entries).sort().forEach(function (key) {
        var entry = entries[key], declared = entry.kind;
        var kind = typeof declared === "string" ? declared : group.kinds.length === 1 ? group.kinds[0] : "*";
        var card = kinds.cards[kind] || kinds.cards["*"];
        var role = fill(card.role, entry, key);
        pools.push({
          name: fill(card.name, entry, key), label: fill(card.kind, entry, key) + (role ? " · " + role : ""),
          check: fill(card.health, entry, key),
          bar: {active: sum(entry, card.active), size: sum(entry, card.size), max: sum(entry, card.max),
                overflow: sum(entry, card.overflow)},
          rows: card.figures.filter(function (figure) {
            return !figure.when || String(valueAt(entry, figure.when[0])) === figure.when[1];
          }).map(function (figure) {
            return [figure.field, figure.label, (FORMATS[figure.format] || num)(valueAt(entry, figure.value))];
          })
        });
      });
    });
    return pools;
  }

  function healthBadge(pool) {
    var check = state.health && state.health.pools ? state.health.pools[pool.check] : null;
    if (!check) return el("span", {className: "cp-badge", text: "health: …", "data-field": "health"});
    var text = check.healthy ? "healthy" : "unhealthy";
    if (check.latency_ms !== null && check.latency_ms !== undefined) text += " · " + Number(check.latency_ms).toFixed(1) + " ms";
    var badge = el("span", {className: "cp-badge " + (check.healthy ? "cp-ok" : "cp-bad"), text: text, "data-field": "health"});
    if (check.error) badge.title = check.error;
    return badge;
  }

  function usageBar(f) {
    var max = Math.max(f.max || 0, f.active || 0, 1);
    var inPool = Math.min(f.active || 0, f.size || 0);
    var over = Math.max((f.active || 0) - (f.size || 0), 0);
    var bar = el("div", {className: "cp-bar", role: "img",
      "aria-label": f.active + " active of " + f.size + " (max " + f.max + ")"});
    var used = el("div", {className: "cp-bar-used"});
    used.style.width = (100 * inPool / max) + "%";
    var overflow = el("div", {className: "cp-bar-overflow"});
    overflow.style.width = (100 * over / max) + "%";
    var marker = el("div", {className: "cp-bar-size"});
    marker.style.left = (100 * Math.min(f.size || 0, max) / max) + "%";
    bar.appendChild(used);
    bar.appendChild(overflow);
    bar.appendChild(marker);
    var caption = el("p", {className: "cp-bar-caption"});
    caption.appendChild(el("strong", {text: num(f.active), "data-field": "bar_active"}));
    caption.appendChild(document.createTextNode(" / " + num(f.size) + " size"));
    if (f.overflow) caption.appendChild(document.createTextNode(" · +" + f.overflow + " overflow"));
    caption.appendChild(document.createTextNode(" · max " + num(f.max)));
    return [bar, caption];
  }

  function renderCards() {
    var container = document.getElementById("cp-cards");
    var pools = allPools(state.stats);
    clear(container);
    if (!pools.length) {
      container.appendChild(el("p", {className: "quiet", id: "cp-no-pools", text: "No pool has reported yet."}));
      return;
    }
    pools.forEach(function (pool) {
      var title = el("h3", {}, [el("span", {className: "cp-pool-name", text: pool.name})]);
      var list = el("dl", {className: "cp-figures"});
      pool.rows.forEach(function (row) {
        list.appendChild(el("dt", {text: row[1]}));
        list.appendChild(el("dd", {text: row[2], "data-field": row[0]}));
      });
      var card = el("article", {className: "cp-card module", "data-pool": pool.name}, [
        title,
        el("p", {className: "cp-kind"}, [el("span", {text: pool.label}), document.createTextNode(" "), healthBadge(pool)])
      ].concat(usageBar(pool.bar), [list]));
      container.appendChild(card);
    });
  }

  /* A small line or bar chart in inline SVG; `lines` = [{values, className, label}], values may hold nulls. */
  function chart(title, times, lines, opts) {
    var width = 320, height = 110, left = 36, right = 6, top = 8, bottom = 18;
    var plotW = width - left - right, plotH = height - top - bottom;
    var all = [];
    lines.forEach(function (line) { line.values.forEach(function (v) { if (v !== null && isFinite(v)) all.push(v); }); });
    var yMax = Math.max.apply(null, all.concat([opts.minMax || 1]));
    var t0 = times[0], t1 = times[times.length - 1];
    var span = Math.max(t1 - t0, 1);
    var x = function (t) { return left + plotW * (t - t0) / span; };
    var y = function (v) { return top + plotH * (1 - v / yMax); };
    var root = svg("svg", {viewBox: "0 0 " + width + " " + height, "class": "cp-chart", role: "img", "aria-label": title});
    root.appendChild(svg("line", {x1: left, y1: top + plotH, x2: left + plotW, y2: top + plotH, "class": "cp-axis"}));
    root.appendChild(svg("line", {x1: left, y1: top, x2: left, y2: top + plotH, "class": "cp-axis"}));
    var maxLabel = svg("text", {x: left - 4, y: top + 8, "class": "cp-tick", "text-anchor": "end"});
    maxLabel.textContent = opts.format(yMax);
    root.appendChild(maxLabel);
    var zero = svg("text", {x: left - 4, y: top + plotH, "class": "cp-tick", "text-anchor": "end"});
    zero.textContent = "0";
    root.appendChild(zero);
    var ago = svg("text", {x: left, y: height - 4, "class": "cp-tick"});
    ago.textContent = "-" + Math.max(Math.round(span / 60), 1) + " min";
    root.appendChild(ago);
    var now = svg("text", {x: left + plotW, y: height - 4, "class": "cp-tick", "text-anchor": "end"});
    now.textContent = "now";
    root.appendChild(now);
    lines.forEach(function (line) {
      if (opts.bars) {
        var barW = Math.max(plotW / Math.max(times.length, 1) - 1, 1);
        line.values.forEach(function (v, i) {
          if (!v) return;
          root.appendChild(svg("rect", {x: x(times[i]) - barW / 2, y: y(v), width: barW, height: top + plotH - y(v),
            "class": line.className}));
        });
        return;
      }
      var points = [];
      line.values.forEach(function (v, i) { if (v !== null && isFinite(v)) points.push(x(times[i]).toFixed(1) + "," + y(v).toFixed(1)); });
      if (points.length === 1) points.push(points[0]);
      root.appendChild(svg("polyline", {points: points.join(" "), "class": "cp-line " + line.className}));
    });
    var legend = el("p", {className: "cp-legend"});
    lines.forEach(function (line) {
      legend.appendChild(el("span", {className: "cp-key " + line.className}));
      legend.appendChild(document.createTextNode(line.label + " "));
    });
    return el("figure", {className: "cp-figure"}, [el("figcaption", {text: title}), root, legend]);
  }

  /* Per-interval increase of a cumulative counter (a reset shows the new value, never a negative). */
  function deltas(values) {
    return values.map(function (v, i) {
      if (i === 0 || v === null || values[i - 1] === null) return 0;
      return v >= values[i - 1] ? v - values[i - 1] : v;
    });
  }

  function renderCharts() {
    var container = document.getElementById("cp-charts");
    var series = state.history && state.history.series ? state.history.series : {};
    var names = Object.keys(series).filter(function (name) { return series[name].length; }).sort();
    clear(container);
    if (!names.length) {
      container.appendChild(el("p", {className: "quiet", text: state.historyError || "No history yet: the first point appears within a few seconds."}));
      return;
    }
    names.forEach(function (name) {
      var points = series[name];
      var times = points.map(function (p) { return p.t; });
      var pick = function (key) { return points.map(function (p) { return p[key]; }); };
      var errors = deltas(pick("errors"));
      var timeouts = deltas(pick("timeouts"));
      var row = el("div", {className: "cp-chart-row", "data-pool": name}, [
        el("h3", {text: name}),
        chart("Active vs size", times, [
          {values: pick("active"), className: "cp-s-active", label: "active"},
          {values: pick("size"), className: "cp-s-size", label: "size"}
        ], {format: String, minMax: 1}),
        chart("Wait p95", times, [
          {values: pick("wait_p95").map(function (v) { return v === null ? null : v * 1000; }), className: "cp-s-wait", label: "p95 (ms)"}
        ], {format: function (v) { return v.toFixed(v >= 10 ? 0 : 1) + "ms"; }, minMax: 1}),
        chart("Errors and timeouts per interval", times, [
          {values: errors.map(function (v, i) { return v + timeouts[i]; }), className: "cp-s-errors", label: "errors + timeouts"}
        ], {format: String, minMax: 1, bars: true})
      ]);
      container.appendChild(row);
    });
  }

  function figureList(rows) {
    var list = el("dl", {className: "cp-figures"});
    rows.forEach(function (row) {
      list.appendChild(el("dt", {text: row[1]}));
      list.appendChild(el("dd", {text: row[2], "data-field": row[0]}));
    });
    return list;
  }

  function sessionText(session) {
    if (!session) return "none";
    var text = Number(session.seconds).toFixed(1) + " s · pid " + session.pid + " · " + session.owner;
    if (session.request || session.view) text += " · " + (session.request || "view " + session.view);
    if (session.query) text += " · " + session.query;
    return text;
  }

  function ownersTable(census) {
    var table = el("table", {className: "cp-table", "data-field": "owners"});
    table.appendChild(el("thead", {}, [el("tr", {}, ["Owner", "Kind", "Connections", "Active", "Idle in tx"].map(
      function (h) { return el("th", {scope: "col", text: h}); }))]));
    var body = el("tbody");
    (census.owners || []).filter(function (o) { return o.kind !== "background"; }).forEach(function (owner) {
      var kind = owner.kind + (owner.reporting === false ? " (stopped reporting)" : "");
      body.appendChild(el("tr", {"data-owner": owner.label}, [el("td", {text: owner.label}), el("td", {text: kind}),
        el("td", {text: String(owner.total)}), el("td", {text: String(owner.states.active)}),
        el("td", {text: String(owner.states.idle_in_transaction + owner.states.idle_in_transaction_aborted)})]));
    });
    table.appendChild(body);
    return table;
  }

  function serverCharts(name) {
    var points = state.server && state.server.history ? state.server.history[name] || [] : [];
    if (points.length < 2) return null;
    var times = points.map(function (p) { return p.t; });
    var pick = function (key) { return points.map(function (p) { return p[key]; }); };
    return el("div", {className: "cp-chart-row"}, [
      chart("Connections by state", times, [
        {values: pick("active"), className: "cp-s-active", label: "active"},
        {values: pick("idle"), className: "cp-s-idle", label: "idle"},
        {values: pick("idle_in_transaction"), className: "cp-s-idletx", label: "idle in transaction"}
      ], {format: String, minMax: 1}),
      chart("Connections by owner", times, [
        {values: pick("ours"), className: "cp-s-ours", label: "ours"},
        {values: pick("other"), className: "cp-s-other", label: "other clients"},
        {values: pick("max_connections"), className: "cp-s-size", label: "max_connections"}
      ], {format: String, minMax: 1})
    ]);
  }

  function renderServer() {
    var container = document.getElementById("cp-server");
    var server = state.server;
    clear(container);
    var names = server ? Object.keys(server.servers || {}).sort() : [];
    var bouncers = server ? Object.keys(server.pgbouncers || {}).sort() : [];
    if (!names.length && !bouncers.length) {
      container.appendChild(el("p", {className: "quiet", text: "No census yet: a server process samples every few seconds."}));
      return;
    }
    names.forEach(function (name) {
      var c = server.servers[name];
      var block = el("div", {className: "cp-server-block", "data-server": name});
      block.appendChild(el("h3", {text: c.server + " · " + name + " · " + c.role + (c.stale ? " · stale" : "")}));
      if (!c.ok) {
        block.appendChild(el("p", {className: "cp-refresh-error", text: "Census failed: " + c.error}));
        container.appendChild(block);
        return;
      }
      block.appendChild(el("div", {}, usageBar({active: c.connections, size: c.available, max: c.max_connections,
        overflow: 0})));
      var s = c.states, k = c.by_kind;
      var row = el("div", {className: "cp-server-row"}, [
        figureList([
          ["headroom", "Headroom", num(c.headroom)],
          ["connections", "Connections", num(c.connections)],
          ["state_active", "Active", num(s.active)],
          ["state_idle", "Idle", num(s.idle)],
          ["state_idle_in_transaction", "Idle in transaction", num(s.idle_in_transaction + s.idle_in_transaction_aborted)],
          ["owner_ours", "Ours", num(k.ours)],
          ["owner_other", "Other clients", num(k.other)],
          ["owner_replication", "Replication", num(k.replication)],
          ["blocked_total", "Blocked on locks", num(c.blocked_total)],
          ["leaks_total", "Leaked", c.leaks_checked ? num(c.leaks_total) : "not checked"]
        ]),
        ownersTable(c)
      ]);
      block.appendChild(row);
      block.appendChild(el("p", {className: "quiet", "data-field": "longest_query", text: "Longest query: " + sessionText(c.longest_query)}));
      block.appendChild(el("p", {className: "quiet", "data-field": "longest_idle_in_transaction",
        text: "Longest idle in transaction: " + sessionText(c.longest_idle_in_transaction)}));
      var charts = serverCharts(name);
      if (charts) block.appendChild(charts);
      container.appendChild(block);
    });
    bouncers.forEach(function (name) {
      var b = server.pgbouncers[name];
      var block = el("div", {className: "cp-server-block", "data-pgbouncer": name});
      block.appendChild(el("h3", {text: "PgBouncer " + b.server + " · " + name + (b.version ? " · " + b.version : "")}));
      if (!b.reachable) {
        block.appendChild(el("p", {className: "cp-refresh-error", text: "Unreachable: " + b.error}));
      } else {
        block.appendChild(figureList([
          ["clients", "Clients", num(b.clients) + " of " + num(b.config.max_client_conn)],
          ["servers", "Server connections", num(b.servers)],
          ["default_pool_size", "default_pool_size", num(b.config.default_pool_size)],
          ["paused", "Paused", b.paused.length ? b.paused.join(", ") : "none"],
          ["recent_logins", "Logins (10 s)", num(b.recent_logins)]
        ]));
      }
      container.appendChild(block);
    });
  }

  function renderRecommendations() {
    var list = document.getElementById("cp-recommendations");
    var recs = (state.stats && state.stats.recommendations) || [];
    clear(list);
    if (!recs.length) {
      list.appendChild(el("li", {className: "quiet", text: "None: every pool looks right for its load."}));
      return;
    }
    var order = {high: 0, medium: 1, low: 2};
    recs.slice().sort(function (a, b) {
      return (a.severity in order ? order[a.severity] : 3) - (b.severity in order ? order[b.severity] : 3);
    }).forEach(function (rec) {
      var item = el("li", {className: "cp-rec cp-sev-" + rec.severity, "data-severity": rec.severity}, [
        el("span", {className: "cp-sev", text: String(rec.severity || "").toUpperCase()}),
        el("strong", {text: " " + rec.pool + ": " + rec.issue}),
        el("span", {text: " — " + rec.suggestion})
      ]);
      if (rec.setting && rec.suggested_value !== undefined && rec.suggested_value !== null) {
        item.appendChild(el("span", {className: "quiet",
          text: " (" + rec.setting + ": " + num(rec.current_value) + " → " + num(rec.suggested_value) + ")"}));
      }
      list.appendChild(item);
    });
  }

  function renderProcesses() {
    var body = document.querySelector("#cp-processes tbody");
    var procs = state.stats && state.stats.processes ? state.stats.processes.list || [] : [];
    clear(body);
    if (!procs.length) {
      body.appendChild(el("tr", {}, [el("td", {colspan: "3", className: "quiet",
        text: "No server process is publishing statistics."})]));
      return;
    }
    procs.forEach(function (proc) {
      body.appendChild(el("tr", {}, [el("td", {text: proc.host}), el("td", {text: String(proc.pid)}),
        el("td", {text: Number(proc.age_seconds).toFixed(1) + " s"})]));
    });
  }

  function renderSummary() {
    var overall = document.getElementById("cp-overall");
    var status = state.health ? state.health.status : null;
    overall.textContent = "health: " + (status || "unknown");
    overall.className = "cp-badge " + (status === "healthy" ? "cp-ok" : status === "degraded" ? "cp-warn" : status ? "cp-bad" : "");
    var source = document.getElementById("cp-source");
    var stats = state.stats;
    if (!stats) { source.textContent = ""; return; }
    var count = stats.processes ? stats.processes.count : 0;
    source.textContent = stats.source === "local"
      ? "Redis is unreachable: showing this server process's numbers only."
      : count + " process" + (count === 1 ? "" : "es") + " reporting";
    source.className = stats.source === "local" ? "cp-refresh-error" : "quiet";
  }

  function renderConfig(config) {
    if (config) document.getElementById("cp-config").textContent = JSON.stringify(config, null, 2);
  }

  function render() {
    renderSummary();
    renderCards();
    renderCharts();
    renderServer();
    renderRecommendations();
    renderProcesses();
  }

  function getJSON(path) {
    return fetch(settings.api_base + path, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) {
        // health answers 503 with a full body when unhealthy: still worth showing.
        if (!response.ok && response.status !== 503) throw new Error(path + ": HTTP " + response.status);
        return response.json();
      });
  }

  function refresh() {
    if (state.busy) return Promise.resolve();
    state.busy = true;
    var minutes = settings.history_minutes;
    return Promise.all([
      getJSON("stats"),
      getJSON("health").catch(function () { return null; }),
      getJSON("history?minutes=" + encodeURIComponent(minutes)).catch(function (error) {
        state.historyError = "History unavailable (" + error.message + ").";
        return null;
      }),
      getJSON("server?minutes=" + encodeURIComponent(minutes)).catch(function () { return null; })
    ]).then(function (results) {
      state.stats = results[0];
      state.health = results[1] || state.health;
      if (results[2]) { state.history = results[2]; state.historyError = null; }
      state.server = results[3] || state.server;
      render();
      var stamp = new Date();
      var updated = document.getElementById("cp-updated");
      updated.textContent = stamp.toLocaleTimeString();
      updated.setAttribute("datetime", stamp.toISOString());
      updated.dataset.count = String(Number(updated.dataset.count || 0) + 1);
      document.getElementById("cp-refresh-error").hidden = true;
    }).catch(function (error) {
      // Keep the last numbers on screen and say plainly that they are stale.
      var box = document.getElementById("cp-refresh-error");
      box.textContent = "Refresh failed: " + error.message + " (showing the last numbers).";
      box.hidden = false;
    }).then(function () { state.busy = false; });
  }

  function confirmForms() {
    ["cp-reset-form", "cp-apply-form"].forEach(function (id) {
      var form = document.getElementById(id);
      if (!form) return;
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
  }

  function start() {
    confirmForms();
    renderConfig(initial.config);
    render();
    refresh();
    state.timer = window.setInterval(refresh, Math.max(settings.refresh_seconds, 1) * 1000);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
