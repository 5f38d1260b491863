// The site's behaviour: overview filters and arrow-key moves between sparklines; a series page's run cursor
// (mouse or arrow keys) and stack-version marks. Everything works on file:// (no fetch, no modules).
"use strict";
(function () {
  function overview() {
    var form = document.getElementById("filters");
    if (!form) return;
    var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-cell]"));
    var groups = Array.prototype.slice.call(document.querySelectorAll("section.group"));
    function apply() {
      var f = {};
      Array.prototype.forEach.call(form.querySelectorAll("select"), function (s) { f[s.name] = s.value; });
      var text = (form.querySelector("input[type=search]").value || "").toLowerCase();
      var onlyChanged = form.querySelector("input[name=changed]").checked;
      groups.forEach(function (g) {
        var groupOk = (!f.suite || g.dataset.suite === f.suite) && (!f.host || g.dataset.host === f.host);
        var shown = 0;
        Array.prototype.forEach.call(g.querySelectorAll("tr[data-cell]"), function (r) {
          var ok = groupOk && ["device", "precision", "env", "model", "kind", "stack"].every(function (k) {
            return !f[k] || r.dataset[k] === f[k];
          });
          if (ok && text) ok = r.dataset.cell.toLowerCase().indexOf(text) >= 0;
          if (ok && onlyChanged) ok = r.dataset.changed === "1";
          r.classList.toggle("hidden", !ok);
          if (ok) shown++;
        });
        g.classList.toggle("hidden", shown === 0);
      });
      var count = document.getElementById("shown");
      if (count) count.textContent = rows.filter(function (r) { return !r.classList.contains("hidden"); }).length;
    }
    form.addEventListener("input", apply);
    form.addEventListener("submit", function (e) { e.preventDefault(); });
    apply();
    // arrow keys move between the grid's sparkline links, as in a spreadsheet
    document.addEventListener("keydown", function (e) {
      var a = document.activeElement;
      var typing = a && (a.tagName === "TEXTAREA" || (a.tagName === "INPUT" && /^(search|text)$/.test(a.type)));
      if (e.key === "/" && !typing) { e.preventDefault(); form.querySelector("input[type=search]").focus(); return; }
      if (!a || !a.classList || !a.classList.contains("sp")) return;
      var td = a.parentElement, tr = td.parentElement, col = Array.prototype.indexOf.call(tr.children, td), target = null;
      function linkIn(row, c) { var cell = row && row.children[c]; return cell && cell.querySelector("a.sp"); }
      function nextRow(row, dir) {
        do { row = dir > 0 ? row.nextElementSibling : row.previousElementSibling; } while (row && row.classList.contains("hidden"));
        return row;
      }
      if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
        var step = e.key === "ArrowRight" ? 1 : -1;
        for (var c = col + step; c >= 0 && c < tr.children.length && !target; c += step) target = linkIn(tr, c);
      } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        for (var r = nextRow(tr, e.key === "ArrowDown" ? 1 : -1); r && !target; r = nextRow(r, e.key === "ArrowDown" ? 1 : -1)) target = linkIn(r, col);
      }
      if (target) { e.preventDefault(); target.focus(); }
    });
  }

  function series() {
    var box = document.getElementById("chart");
    var dataEl = document.getElementById("series-data");
    if (!box || !dataEl) return;
    var d = JSON.parse(dataEl.textContent), runs = window.HARNESS_RUNS || [];
    var svg = box.querySelector("svg.series"), cursor = svg.querySelector("#cursor"), detail = document.getElementById("point");
    var left = +svg.dataset.left, step = +svg.dataset.step, n = +svg.dataset.n, t0 = +svg.dataset.t0, t1 = +svg.dataset.t1;
    var top = +svg.dataset.top, bottom = +svg.dataset.bottom, at = n - 1;
    function x(i) { return n > 1 ? left + i * step : left + step / 2; }
    function y(v) { return Math.min(Math.max(bottom - (v - t0) / (t1 - t0) * (bottom - top), top - 6), bottom + 6); }
    function fmt(v) { return v === null ? "—" : Number(v).toPrecision(4); }
    function show(i) {
      at = Math.max(0, Math.min(n - 1, i));
      var run = runs[d.run[at]] || [];
      cursor.setAttribute("visibility", "visible");
      cursor.querySelector("line").setAttribute("x1", x(at)); cursor.querySelector("line").setAttribute("x2", x(at));
      cursor.querySelector("circle").setAttribute("cx", x(at)); cursor.querySelector("circle").setAttribute("cy", y(d.v[at]));
      detail.textContent = "";
      var head = document.createElement("strong");
      head.textContent = "run " + (run[0] || "?") + " · " + (run[1] || "").slice(0, 16).replace("T", " ");
      detail.appendChild(head);
      detail.appendChild(document.createTextNode(" — " + fmt(d.v[at]) + " " + d.unit +
        (d.lo[at] !== null ? " [" + fmt(d.lo[at]) + ", " + fmt(d.hi[at]) + "]" : "") + " · " + (run[2] || "") +
        " · run " + (at + 1) + " of " + n + " "));
      if (run[3]) { var a = document.createElement("a"); a.href = d.root + run[3]; a.textContent = "report"; a.id = "run-report"; detail.appendChild(a); }
    }
    function nearest(evt) {
      var r = svg.getBoundingClientRect(), vx = (evt.clientX - r.left) / r.width * svg.viewBox.baseVal.width;
      return Math.round((vx - left) / (step || 1));
    }
    svg.addEventListener("mousemove", function (e) { show(nearest(e)); });
    svg.addEventListener("click", function (e) { show(nearest(e)); box.focus(); });
    box.addEventListener("keydown", function (e) {
      var moves = { ArrowLeft: -1, ArrowRight: 1, PageUp: -10, PageDown: 10 };
      if (e.key in moves) { show(at + moves[e.key]); e.preventDefault(); }
      else if (e.key === "Home") { show(0); e.preventDefault(); }
      else if (e.key === "End") { show(n - 1); e.preventDefault(); }
      else if (e.key === "Enter") { var a = document.getElementById("run-report"); if (a) a.click(); }
    });
    box.addEventListener("focus", function () { show(at); });
    var pick = document.getElementById("stack");
    if (pick) pick.addEventListener("input", function () {
      var marks = svg.querySelector("#marks");
      while (marks.firstChild) marks.removeChild(marks.firstChild);
      var shown = 0;
      for (var i = 0; i < n && pick.value; i++) {
        if ((runs[d.run[i]] || [])[2] !== pick.value) continue;
        var c = document.createElementNS("http://www.w3.org/2000/svg", "circle");
        c.setAttribute("cx", x(i)); c.setAttribute("cy", y(d.v[i])); c.setAttribute("r", 3.2);
        marks.appendChild(c); shown++;
      }
      document.getElementById("stack-count").textContent = pick.value ? shown + " runs" : "";
    });
  }
  overview();
  series();
})();
