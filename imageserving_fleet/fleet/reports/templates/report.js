(function () {
  "use strict";
  var table = document.getElementById("hosts");
  if (!table) { return; }
  var tbody = table.tBodies[0];
  var rows = Array.prototype.slice.call(tbody.rows);
  var heads = Array.prototype.slice.call(table.querySelectorAll("th[data-key]"));
  var boxes = Array.prototype.slice.call(document.querySelectorAll("input[data-result]"));
  var q = document.getElementById("q");
  var shown = document.getElementById("shown");
  var view = {sort: "", dir: "asc", q: "", hide: []};

  // Each row's sort values by column key, read once (no selector is built from a host value).
  rows.forEach(function (row) {
    var values = {};
    Array.prototype.forEach.call(row.cells, function (cell) {
      if (cell.dataset.col) { values[cell.dataset.col] = cell.dataset.v || ""; }
    });
    row._values = values;
    row._text = row.textContent.toLowerCase();
    row._index = Number(row.dataset.index);
  });

  function compare(a, b, key) {
    var x = a._values[key] || "", y = b._values[key] || "";
    if (x === "" || y === "") { return x === y ? 0 : (x === "" ? 1 : -1) * (view.dir === "desc" ? -1 : 1); }
    var nx = Number(x), ny = Number(y);
    if (!isNaN(nx) && !isNaN(ny)) { return nx - ny; }
    return x.localeCompare(y, undefined, {numeric: true, sensitivity: "base"});
  }

  function apply() {
    var sign = view.dir === "desc" ? -1 : 1;
    var ordered = rows.slice();
    if (view.sort) {
      ordered.sort(function (a, b) { return sign * compare(a, b, view.sort) || a._index - b._index; });
    }
    var needle = view.q.trim().toLowerCase();
    var visible = 0;
    ordered.forEach(function (row) {
      var hide = view.hide.indexOf(row.dataset.result) >= 0 || (needle && row._text.indexOf(needle) < 0);
      row.hidden = !!hide;
      if (!hide) { visible += 1; }
      tbody.appendChild(row);
    });
    heads.forEach(function (th) {
      if (th.dataset.key === view.sort) { th.setAttribute("aria-sort", view.dir === "desc" ? "descending" : "ascending"); }
      else { th.removeAttribute("aria-sort"); }
    });
    boxes.forEach(function (box) { box.checked = view.hide.indexOf(box.dataset.result) < 0; });
    if (q.value !== view.q) { q.value = view.q; }
    shown.textContent = visible + " of " + rows.length + " hosts";
    document.body.dataset.sort = view.sort + ":" + view.dir;
  }

  function save() {
    var p = new URLSearchParams();
    if (view.sort) { p.set("sort", view.sort); p.set("dir", view.dir); }
    if (view.q) { p.set("q", view.q); }
    if (view.hide.length) { p.set("hide", view.hide.join(",")); }
    var hash = p.toString();
    try { history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search); }
    catch (e) { /* a file:// page in some browsers: the view still works, the address just does not follow */ }
  }

  function load() {
    var p = new URLSearchParams(location.hash.replace(/^#/, ""));
    var keys = heads.map(function (th) { return th.dataset.key; });
    view.sort = keys.indexOf(p.get("sort")) >= 0 ? p.get("sort") : "";
    view.dir = p.get("dir") === "desc" ? "desc" : "asc";
    view.q = p.get("q") || "";
    view.hide = (p.get("hide") || "").split(",").filter(function (r) { return r; });
  }

  heads.forEach(function (th) {
    th.addEventListener("click", function () {
      var key = th.dataset.key;
      if (view.sort === key) { view.dir = view.dir === "asc" ? "desc" : "asc"; }
      else { view.sort = key; view.dir = key === "host" || key === "reason" ? "asc" : "desc"; }
      apply(); save();
    });
  });
  boxes.forEach(function (box) {
    box.addEventListener("change", function () {
      var r = box.dataset.result;
      view.hide = view.hide.filter(function (x) { return x !== r; });
      if (!box.checked) { view.hide.push(r); }
      apply(); save();
    });
  });
  q.addEventListener("input", function () { view.q = q.value; apply(); save(); });
  window.addEventListener("hashchange", function () { load(); apply(); });
  load();
  apply();
  document.body.dataset.ready = "1";
}());
