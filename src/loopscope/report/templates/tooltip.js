// The timeline's tooltip: reads the hovered bar's data-* attributes; builds text nodes only,
// never HTML, so nothing from a trace can inject markup.
(function () {
  "use strict";
  var tip = document.getElementById("tooltip");
  if (!tip) { return; }
  var labels = JSON.parse(tip.getAttribute("data-labels") || "{}");
  var current = null;

  function ms(value) {
    var n = parseFloat(value);
    if (isNaN(n)) { return "?"; }
    if (n >= 100) { return n.toFixed(1) + " ms"; }
    if (n >= 1) { return n.toFixed(2) + " ms"; }
    return n.toFixed(3) + " ms";
  }

  function add(text, cls) {
    var div = document.createElement("div");
    div.textContent = text;
    if (cls) { div.className = cls; }
    tip.appendChild(div);
  }

  function place(ev) {
    var pad = 14;
    var box = tip.getBoundingClientRect();
    var x = ev.clientX + pad;
    var y = ev.clientY + pad;
    if (x + box.width > window.innerWidth - 4) { x = ev.clientX - box.width - pad; }
    if (y + box.height > window.innerHeight - 4) { y = ev.clientY - box.height - pad; }
    tip.style.left = Math.max(4, x) + "px";
    tip.style.top = Math.max(4, y) + "px";
  }

  function show(bar, ev) {
    var d = bar.dataset;
    tip.replaceChildren();
    add((d.request || "no request") + (d.route ? " · " + d.route : ""), "tip-title");
    add(d.state + (labels[d.state] ? " — " + labels[d.state] : ""), "tip-state");
    add("start " + ms(d.startMs) + " · duration " + ms(d.durMs));
    if (d.cpuMs) {
      var cpu = parseFloat(d.cpuMs);
      var wait = Math.max(0, parseFloat(d.durMs) - cpu);
      add("CPU " + ms(cpu) + " · waiting " + ms(wait));
    } else if (d.state === "loop-blocked" || d.state === "in-thread") {
      add("CPU time not measured");
    }
    if (d.where) { add("at " + d.where, "tip-where"); }
    if (d.merged) { add(d.merged + " short segments merged into this bar", "tip-note"); }
    if (d.status) {
      // A 5xx or no answer at all: the request failed.
      var failed = d.status === "no answer" || parseInt(d.status, 10) >= 500;
      add(d.status === "no answer" ? "no answer" : "status " + d.status, failed ? "tip-failed" : "");
    }
    tip.hidden = false;
    place(ev);
  }

  document.addEventListener("mouseover", function (ev) {
    var target = ev.target;
    var bar = target && target.closest ? target.closest("rect.seg") : null;
    if (bar) {
      if (current) { current.classList.remove("hover"); }
      current = bar;
      bar.classList.add("hover");
      show(bar, ev);
    } else if (current) {
      current.classList.remove("hover");
      current = null;
      tip.hidden = true;
    }
  });
  document.addEventListener("mousemove", function (ev) {
    if (!tip.hidden) { place(ev); }
  });
})();
