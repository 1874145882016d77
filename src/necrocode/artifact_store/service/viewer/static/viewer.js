// NecroCode artifact viewer. Plain script, no dependencies, served by the service itself.
// Artifact text only ever reaches the page through textContent: never parsed as HTML.
"use strict";

(function () {
  document.documentElement.classList.add("js");

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $$(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) {
          return response.json().catch(function () { return {}; }).then(function (body) {
            const message = body && body.error ? body.error.message : response.statusText;
            throw new Error(message || ("HTTP " + response.status));
          });
        }
        return response.json();
      });
  }
  function withParams(url, params) {
    const parts = [];
    Object.keys(params).forEach(function (key) {
      parts.push(encodeURIComponent(key) + "=" + encodeURIComponent(params[key]));
    });
    return url + (url.indexOf("?") >= 0 ? "&" : "?") + parts.join("&");
  }
  function typingInField(event) {
    const target = event.target;
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }
  function number(n) { return Number(n).toLocaleString("en-US"); }

  // ---- small page behaviours -------------------------------------------------------

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    const area = el("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
    return Promise.resolve();
  }

  function flash(button, text) {
    let note = button.nextElementSibling;
    if (!note || !note.classList.contains("flash")) {
      note = el("span", "flash");
      note.setAttribute("role", "status");
      button.after(note);
    }
    note.textContent = text;
    setTimeout(function () { note.textContent = ""; }, 2500);
  }

  $$("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      copyText(button.getAttribute("data-copy")).then(
        function () { flash(button, "Copied"); },
        function () { flash(button, "Copy failed"); });
    });
  });

  $$("form[data-autosubmit] select").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  $$("[data-delete]").forEach(function (button) {
    button.addEventListener("click", function () {
      if (!window.confirm("Delete " + button.getAttribute("data-what") + "? This cannot be undone.")) return;
      fetch(button.getAttribute("data-delete"), { method: "DELETE", credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          window.location.assign(button.getAttribute("data-after"));
        })
        .catch(function (error) { flash(button, "Delete failed: " + error.message); });
    });
  });

  // ---- tabs (task page) ------------------------------------------------------------

  $$("[role=tablist]").forEach(function (list) {
    const tabs = $$("[role=tab]", list);
    function select(tab, focus) {
      tabs.forEach(function (other) {
        const on = other === tab;
        other.setAttribute("aria-selected", on ? "true" : "false");
        other.tabIndex = on ? 0 : -1;
        const panel = document.getElementById(other.getAttribute("aria-controls"));
        if (panel) panel.hidden = !on;
      });
      if (focus) tab.focus();
      if (history.replaceState) history.replaceState(null, "", "#" + tab.id);
      document.dispatchEvent(new CustomEvent("viewer:tab", { detail: tab.id }));
    }
    tabs.forEach(function (tab, index) {
      tab.addEventListener("click", function () { select(tab, false); });
      tab.addEventListener("keydown", function (event) {
        let next = null;
        if (event.key === "ArrowRight") next = tabs[(index + 1) % tabs.length];
        else if (event.key === "ArrowLeft") next = tabs[(index - 1 + tabs.length) % tabs.length];
        else if (event.key === "Home") next = tabs[0];
        else if (event.key === "End") next = tabs[tabs.length - 1];
        if (next) { event.preventDefault(); select(next, true); }
      });
    });
    const wanted = tabs.filter(function (tab) { return "#" + tab.id === window.location.hash; })[0];
    select(wanted || tabs.filter(function (tab) { return tab.getAttribute("aria-selected") === "true"; })[0] || tabs[0], false);
  });

  // ---- keyboard --------------------------------------------------------------------

  let navIndex = -1;
  function navigate(step) {
    const items = $$("[data-nav-item]").filter(function (item) { return item.offsetParent !== null; });
    if (!items.length) return;
    navIndex = Math.max(0, Math.min(items.length - 1, navIndex + step));
    const item = items[navIndex];
    items.forEach(function (other) { other.classList.toggle("nav-current", other === item); });
    item.scrollIntoView({ block: "start" });
    const focusable = item.matches("summary, a, button") ? item : $("summary, a, button", item);
    if (focusable) focusable.focus({ preventScroll: true });
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const help = document.getElementById("key-help");
    if (event.key === "Escape" && help && !help.hidden) { help.hidden = true; return; }
    if (typingInField(event)) return;
    if (event.key === "?") { if (help) help.hidden = !help.hidden; event.preventDefault(); return; }
    if (event.key === "/") {
      const visible = $$("[data-search-key]").filter(function (field) { return field.offsetParent !== null; });
      if (visible.length) { event.preventDefault(); visible[0].focus(); visible[0].select(); }
      return;
    }
    if (event.key === "j") { navigate(1); return; }
    if (event.key === "k") { navigate(-1); return; }
    const log = activeLog();
    if (!log) return;
    if (event.key === "g") { event.preventDefault(); log.goHead(); }
    else if (event.key === "G") { event.preventDefault(); log.goTail(); }
    else if (event.key === "n") { event.preventDefault(); log.nextHit(1); }
    else if (event.key === "N") { event.preventDefault(); log.nextHit(-1); }
  });

  // ---- log viewer ------------------------------------------------------------------
  // The DOM holds only the rows on screen plus a margin; lines come from the service in
  // chunks, kept in a small cache. Collapsed sections hide line ranges, so rows and
  // line numbers differ: rowToLine / lineToRow translate.

  const CHUNK = 250;
  const MAX_CHUNKS = 48;
  const OVERSCAN = 30;
  const MAX_PIXELS = 8000000; // browsers cap element heights; taller logs scroll scaled

  const logs = [];
  function activeLog() {
    return logs.filter(function (log) { return log.root.offsetParent !== null; })[0] || null;
  }

  function LogView(root) {
    this.root = root;
    this.linesUrl = root.getAttribute("data-lines");
    this.infoUrl = root.getAttribute("data-info");
    this.searchUrl = root.getAttribute("data-search");
    this.viewport = $("[data-log-viewport]", root);
    this.status = $("[data-log-status]", root);
    this.hitsLabel = $("[data-log-hits]", root);
    this.ready = root.getAttribute("data-ready") === "true";
    this.total = Number(root.getAttribute("data-total-lines"));
    this.totalBytes = Number(root.getAttribute("data-total-bytes"));
    this.chunks = new Map();
    this.loading = new Set();
    this.sections = [];
    this.collapsed = new Set();
    this.hidden = [];
    this.highlight = null;
    this.hits = [];
    this.hitSet = new Set();
    this.hitIndex = -1;
    this.hitsMore = null;
    this.query = "";
    this.scheduled = false;
    this.lineHeight = 20;
    this.init();
  }

  LogView.prototype.init = function () {
    const self = this;
    const staticRows = $$("[data-log-static] .log-row", this.root);
    const head = staticRows.map(function (row) { return JSON.parse(row.getAttribute("data-line")); });
    head.forEach(function (line) { self.store(line); });
    if (!this.ready) this.total = head.length;
    const probe = staticRows[0];
    if (probe && probe.offsetHeight) this.lineHeight = probe.offsetHeight;
    this.viewport.textContent = "";
    this.sizer = el("div", "log-sizer");
    this.window = el("div", "log-window");
    this.viewport.appendChild(this.sizer);
    this.viewport.appendChild(this.window);
    this.viewport.addEventListener("scroll", function () { self.schedule(); });
    window.addEventListener("resize", function () { self.schedule(); });
    document.addEventListener("viewer:tab", function () { self.schedule(); self.onHash(); });
    this.window.addEventListener("click", function (event) { self.onClick(event); });
    $$("[data-log-go]", this.root).forEach(function (button) {
      button.addEventListener("click", function () {
        if (button.getAttribute("data-log-go") === "tail") self.goTail(); else self.goHead();
      });
    });
    const form = $("[data-log-search-form]", this.root);
    if (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        self.search(new FormData(form).get("q") || "");
      });
    }
    const prev = $("[data-log-prev]", this.root);
    const next = $("[data-log-next]", this.root);
    if (prev) prev.addEventListener("click", function () { self.nextHit(-1); });
    if (next) next.addEventListener("click", function () { self.nextHit(1); });
    const collapse = $("[data-log-collapse]", this.root);
    if (collapse) collapse.addEventListener("click", function () { self.toggleAll(collapse); });
    window.addEventListener("hashchange", function () { self.onHash(); });
    this.updateStatus();
    if (this.ready && this.root.hasAttribute("data-has-info")) {
      this.applyInfo(JSON.parse(this.root.getAttribute("data-info-json")));
    } else if (!this.ready) {
      this.poll();
    }
    this.render();
    this.onHash();
    if (!window.location.hash && this.root.getAttribute("data-view") === "tail") this.whenReady(function () { self.goTail(); });
  };

  LogView.prototype.store = function (line) {
    const chunk = Math.floor((line.n - 1) / CHUNK);
    let lines = this.chunks.get(chunk);
    if (!lines) { lines = []; this.chunks.set(chunk, lines); }
    lines[(line.n - 1) % CHUNK] = line;
  };

  LogView.prototype.line = function (n) {
    const chunk = Math.floor((n - 1) / CHUNK);
    const lines = this.chunks.get(chunk);
    const line = lines ? lines[(n - 1) % CHUNK] : undefined;
    const complete = lines && (lines.filter(Boolean).length === Math.min(CHUNK, this.total - chunk * CHUNK));
    if (!line || !complete) this.fetchChunk(chunk);
    if (lines) { this.chunks.delete(chunk); this.chunks.set(chunk, lines); } // most recent last
    return line;
  };

  LogView.prototype.fetchChunk = function (chunk) {
    if (this.loading.has(chunk) || !this.linesUrl) return;
    if (!this.ready && this.chunks.has(chunk) && chunk === 0) return;
    const self = this;
    this.loading.add(chunk);
    getJSON(withParams(this.linesUrl, { start: chunk * CHUNK + 1, count: CHUNK }))
      .then(function (data) {
        data.lines.forEach(function (line) { self.store(line); });
        if (data.total_lines !== self.total) { self.total = data.total_lines; self.ready = true; self.updateStatus(); }
        while (self.chunks.size > MAX_CHUNKS) self.chunks.delete(self.chunks.keys().next().value);
        self.loading.delete(chunk);
        self.schedule();
      })
      .catch(function (error) {
        self.loading.delete(chunk);
        self.setStatus("Could not load lines: " + error.message);
      });
  };

  LogView.prototype.poll = function () {
    const self = this;
    getJSON(withParams(this.infoUrl, { wait: 1 }))
      .then(function (info) { self.applyInfo(info); })
      .catch(function (error) { self.setStatus("Could not read the log: " + error.message); });
  };

  LogView.prototype.whenReady = function (callback) {
    if (this.ready) { callback(); return; }
    (this.waiting = this.waiting || []).push(callback);
  };

  LogView.prototype.applyInfo = function (info) {
    if (!info.ready) return;
    this.ready = true;
    this.total = info.total_lines;
    this.sections = info.sections || [];
    this.fillMarkers(info);
    this.updateStatus();
    this.computeHidden();
    this.schedule();
    const waiting = this.waiting || [];
    this.waiting = [];
    waiting.forEach(function (callback) { callback(); });
  };

  LogView.prototype.fillMarkers = function (info) {
    const self = this;
    [["errors", "data-log-errors", info.error_count], ["warnings", "data-log-warnings", info.warning_count]].forEach(function (spec) {
      const list = $("[" + spec[1] + "]", document);
      if (!list || !info[spec[0]]) return;
      list.textContent = "";
      info[spec[0]].slice(0, 200).forEach(function (marker) {
        const item = el("li");
        const link = el("a", null, "L" + marker.line);
        link.href = "#L" + marker.line;
        item.appendChild(link);
        item.appendChild(document.createTextNode(" " + marker.text));
        item.title = marker.text;
        list.appendChild(item);
      });
      const count = $("[" + spec[1] + "-count]", document);
      if (count) count.textContent = spec[2] === null || spec[2] === undefined ? "" : number(spec[2]);
      if (!info[spec[0]].length) list.appendChild(el("li", "muted", "none"));
    });
    const sections = $("[data-log-sections]", document);
    if (sections) {
      sections.textContent = "";
      this.sections.slice(0, 300).forEach(function (section) {
        const item = el("li");
        const link = el("a", null, "L" + section.start);
        link.href = "#L" + section.start;
        item.appendChild(link);
        item.appendChild(document.createTextNode(" " + (section.title || section.name)));
        sections.appendChild(item);
      });
      if (!this.sections.length) sections.appendChild(el("li", "muted", "none"));
    }
    const collapse = $("[data-log-collapse]", this.root);
    if (collapse) collapse.hidden = !this.sections.length;
    void self;
  };

  LogView.prototype.computeHidden = function () {
    const ranges = [];
    const self = this;
    this.sections.forEach(function (section, index) {
      if (self.collapsed.has(index) && section.end > section.start) ranges.push([section.start + 1, section.end]);
    });
    ranges.sort(function (a, b) { return a[0] - b[0]; });
    const merged = [];
    ranges.forEach(function (range) {
      const last = merged[merged.length - 1];
      if (last && range[0] <= last[1] + 1) last[1] = Math.max(last[1], range[1]);
      else merged.push([range[0], range[1]]);
    });
    this.hidden = merged;
  };

  LogView.prototype.rowCount = function () {
    let hidden = 0;
    this.hidden.forEach(function (range) { hidden += range[1] - range[0] + 1; });
    return Math.max(0, this.total - hidden);
  };

  LogView.prototype.rowToLine = function (row) {
    let line = row + 1;
    for (let i = 0; i < this.hidden.length; i++) {
      if (this.hidden[i][0] <= line) line += this.hidden[i][1] - this.hidden[i][0] + 1;
      else break;
    }
    return line;
  };

  LogView.prototype.lineToRow = function (line) {
    let row = line - 1;
    for (let i = 0; i < this.hidden.length; i++) {
      const range = this.hidden[i];
      if (range[1] < line) row -= range[1] - range[0] + 1;
      else if (range[0] <= line) row -= line - range[0] + 1;
    }
    return Math.max(0, row);
  };

  LogView.prototype.expandAround = function (line) {
    let changed = false;
    const self = this;
    this.sections.forEach(function (section, index) {
      if (self.collapsed.has(index) && line > section.start && line <= section.end) {
        self.collapsed.delete(index);
        changed = true;
      }
    });
    if (changed) this.computeHidden();
  };

  LogView.prototype.geometry = function () {
    const rows = this.rowCount();
    const full = rows * this.lineHeight;
    const height = Math.min(full, MAX_PIXELS);
    const viewHeight = this.viewport.clientHeight || 400;
    const visible = Math.ceil(viewHeight / this.lineHeight) + 1;
    return { rows: rows, height: height, scaled: full > MAX_PIXELS, viewHeight: viewHeight, visible: visible };
  };

  LogView.prototype.schedule = function () {
    if (this.scheduled) return;
    this.scheduled = true;
    const self = this;
    window.requestAnimationFrame(function () { self.scheduled = false; self.render(); });
  };

  LogView.prototype.firstRow = function (g) {
    const top = this.viewport.scrollTop;
    if (!g.scaled) return Math.floor(top / this.lineHeight);
    const span = Math.max(1, g.height - g.viewHeight);
    return Math.floor(Math.min(1, top / span) * Math.max(0, g.rows - g.visible));
  };

  LogView.prototype.render = function () {
    const g = this.geometry();
    this.sizer.style.height = g.height + "px";
    const first = Math.min(this.firstRow(g), Math.max(0, g.rows - 1));
    const from = Math.max(0, first - OVERSCAN);
    const to = Math.min(g.rows, first + g.visible + OVERSCAN);
    const top = g.scaled ? this.viewport.scrollTop - (first - from) * this.lineHeight : from * this.lineHeight;
    this.window.style.transform = "translateY(" + Math.max(0, top) + "px)";
    const fragment = document.createDocumentFragment();
    const starts = {};
    const self = this;
    this.sections.forEach(function (section, index) { starts[section.start] = index; });
    for (let row = from; row < to; row++) {
      const n = this.rowToLine(row);
      fragment.appendChild(this.renderRow(n, this.line(n), starts[n]));
    }
    this.window.textContent = "";
    this.window.appendChild(fragment);
    void self;
  };

  LogView.prototype.renderRow = function (n, line, sectionIndex) {
    const row = el("div", "log-row");
    // Not "L<n>": the script scrolls to #L<n> itself, inside the log; an element
    // with that id would make the browser scroll the whole window to it too.
    row.id = "line-" + n;
    row.setAttribute("data-n", n);
    const number = el("a", "ln", String(n));
    number.href = "#L" + n;
    row.appendChild(number);
    if (sectionIndex !== undefined) {
      row.classList.add("section");
      row.setAttribute("data-section", sectionIndex);
      const fold = el("span", "fold", this.collapsed.has(sectionIndex) ? "▸" : "▾");
      fold.setAttribute("aria-hidden", "true");
      row.appendChild(fold);
      row.title = this.collapsed.has(sectionIndex) ? "Show this section" : "Hide this section";
    }
    const text = el("span", "lt");
    if (line) {
      line.spans.forEach(function (span) {
        const part = el("span", span[1] || null, span[0]);
        if (span[2]) part.style.color = span[2];
        if (span[3]) part.style.backgroundColor = span[3];
        text.appendChild(part);
      });
      if (line.level) row.classList.add(line.level);
    } else {
      row.classList.add("pending");
      text.textContent = "…";
    }
    row.appendChild(text);
    if (this.highlight && n >= this.highlight[0] && n <= this.highlight[1]) row.classList.add("hl");
    if (this.hitSet.has(n)) {
      row.classList.add("hit");
      if (this.hits[this.hitIndex] && this.hits[this.hitIndex].line === n) row.classList.add("current");
    }
    return row;
  };

  LogView.prototype.onClick = function (event) {
    const number = event.target.closest(".ln");
    const row = event.target.closest(".log-row");
    if (number && row) {
      event.preventDefault();
      const n = Number(row.getAttribute("data-n"));
      let hash = "#L" + n;
      if (event.shiftKey && this.highlight) {
        const a = Math.min(this.highlight[0], n);
        const b = Math.max(this.highlight[0], n);
        hash = a === b ? "#L" + a : "#L" + a + "-L" + b;
      }
      if (window.location.hash === hash) this.onHash(); else window.location.hash = hash;
      return;
    }
    if (row && row.hasAttribute("data-section")) {
      const index = Number(row.getAttribute("data-section"));
      if (this.collapsed.has(index)) this.collapsed.delete(index); else this.collapsed.add(index);
      this.computeHidden();
      this.render();
    }
  };

  LogView.prototype.toggleAll = function (button) {
    const collapse = this.collapsed.size < this.sections.length;
    this.collapsed = new Set();
    if (collapse) for (let i = 0; i < this.sections.length; i++) this.collapsed.add(i);
    button.textContent = collapse ? "Expand sections" : "Collapse sections";
    this.computeHidden();
    this.render();
  };

  LogView.prototype.scrollToLine = function (n, position) {
    this.expandAround(n);
    const g = this.geometry();
    const row = this.lineToRow(n);
    let top;
    if (position === "end") top = g.height;
    else if (!g.scaled) top = row * this.lineHeight - Math.floor(g.viewHeight / 3);
    else top = (row / Math.max(1, g.rows - g.visible)) * (g.height - g.viewHeight);
    this.viewport.scrollTop = Math.max(0, top);
    this.render();
  };

  LogView.prototype.onHash = function () {
    const match = /^#L(\d+)(?:-L(\d+))?$/.exec(window.location.hash);
    if (!match || this.root.offsetParent === null) return;
    const a = Number(match[1]);
    const b = match[2] ? Number(match[2]) : a;
    this.highlight = [Math.min(a, b), Math.max(a, b)];
    const self = this;
    const go = function () {
      self.scrollToLine(Math.min(self.highlight[0], Math.max(1, self.total)));
      const box = self.viewport.getBoundingClientRect();
      if (box.top < 0 || box.bottom > window.innerHeight + 40) self.root.scrollIntoView({ block: "start" });
    };
    if (this.ready) { go(); return; }
    if (a <= this.total) go(); // in the head already; again once sections are known
    this.whenReady(go);
  };

  LogView.prototype.goHead = function () { this.viewport.scrollTop = 0; this.render(); this.viewport.focus({ preventScroll: true }); };

  LogView.prototype.goTail = function () {
    const self = this;
    this.whenReady(function () { self.scrollToLine(self.total, "end"); self.viewport.focus({ preventScroll: true }); });
  };

  LogView.prototype.search = function (query) {
    const self = this;
    this.query = query;
    this.hits = [];
    this.hitSet = new Set();
    this.hitIndex = -1;
    this.hitsMore = null;
    if (!query) { this.hitsLabel.textContent = ""; this.render(); return; }
    this.hitsLabel.textContent = "searching…";
    this.loadHits(0).then(function () { self.nextHit(1); });
  };

  LogView.prototype.loadHits = function (after) {
    const self = this;
    return getJSON(withParams(this.searchUrl, { q: this.query, after: after, limit: 200 }))
      .then(function (data) {
        data.hits.forEach(function (hit) { self.hits.push(hit); self.hitSet.add(hit.line); });
        self.hitsMore = data.next_after;
        self.total = data.total_lines;
        self.hitsLabel.textContent = self.hits.length ? number(self.hits.length) + (self.hitsMore !== null ? "+" : "") + " matching lines" : "no match";
      })
      .catch(function (error) { self.hitsLabel.textContent = error.message; });
  };

  LogView.prototype.nextHit = function (step) {
    const self = this;
    if (!this.hits.length) return;
    const target = this.hitIndex + step;
    if (target >= this.hits.length && this.hitsMore !== null) {
      this.loadHits(this.hitsMore).then(function () { self.nextHit(step); });
      return;
    }
    this.hitIndex = (target + this.hits.length) % this.hits.length;
    const hit = this.hits[this.hitIndex];
    this.hitsLabel.textContent = (this.hitIndex + 1) + " of " + number(this.hits.length) + (this.hitsMore !== null ? "+" : "") + " matching lines";
    this.scrollToLine(hit.line);
  };

  LogView.prototype.setStatus = function (text) { if (this.status) this.status.textContent = text; };

  LogView.prototype.updateStatus = function () {
    const size = this.totalBytes >= 1048576 ? (this.totalBytes / 1048576).toFixed(1) + " MiB" : this.totalBytes >= 1024 ? (this.totalBytes / 1024).toFixed(1) + " KiB" : this.totalBytes + " B";
    this.setStatus(this.ready ? number(this.total) + " lines · " + size : "counting lines… · " + size);
  };

  $$("[data-log]").forEach(function (root) { logs.push(new LogView(root)); });
  window.necrocodeViewer = { logs: logs };
})();
