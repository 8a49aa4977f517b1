// "Remember this code on this device": the codes live in this browser's localStorage only (the
// portal keeps nothing), and the home page shows each with what is due, read from the public
// lookup API, so a household with several meters (parents', a shop) sees them all at a glance.
// Without script the home page is the same as ever.
(function () {
  "use strict";
  var KEY = "portal.rememberedCodes";
  var MOST = 5;

  function load() {
    try {
      var codes = JSON.parse(window.localStorage.getItem(KEY) || "[]");
      return Array.isArray(codes) ? codes.filter(function (c) { return typeof c === "string"; }) : [];
    } catch (e) { return []; }
  }
  function save(codes) {
    try { window.localStorage.setItem(KEY, JSON.stringify(codes.slice(0, MOST))); } catch (e) { /* private mode */ }
  }

  // The bills page's "remember" link leads here with the code (the bills page runs no script);
  // it is stored, and the address cleaned so a reload or a bookmark does not store it again.
  // Only when it comes from that very code's bills page on this site: a link from anywhere else
  // must not plant a stranger's code (and a bill to pay) in the household's list.
  var params = new URLSearchParams(window.location.search);
  var asked = (params.get("remember") || "").toUpperCase();
  if (asked) {
    var from = null;
    try { from = new URL(document.referrer); } catch (e) { from = null; }
    if (/^[A-Z0-9]{6,20}$/.test(asked) && from && from.origin === window.location.origin &&
        from.pathname === "/bills/" + asked + "/") {
      save([asked].concat(load().filter(function (c) { return c !== asked; })));
    }
    window.history.replaceState(null, "", window.location.pathname);
  }

  // The home page: the remembered codes, each with its total due and a way to forget it.
  var list = document.querySelector("[data-remembered]");
  if (!list) { return; }
  var codes = load();
  if (!codes.length) { return; }
  var items = list.querySelector("ul");
  var money = new Intl.NumberFormat("vi-VN");
  codes.forEach(function (code) {
    var item = document.createElement("li");
    item.setAttribute("data-code", code);
    var link = document.createElement("a");
    link.href = "/bills/" + encodeURIComponent(code) + "/";
    link.className = "code";
    link.textContent = code;
    var due = document.createElement("span");
    due.className = "remembered-due";
    var forget = document.createElement("button");
    forget.type = "button";
    forget.className = "btn-link";
    forget.textContent = list.getAttribute("data-label-forget");
    forget.addEventListener("click", function () {
      save(load().filter(function (c) { return c !== code; }));
      item.remove();
      if (!items.children.length) { list.hidden = true; }
    });
    item.appendChild(link);
    item.appendChild(due);
    item.appendChild(forget);
    items.appendChild(item);
    fetch("/api/v1/customers/" + encodeURIComponent(code) + "/bills/", { headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) { due.textContent = list.getAttribute("data-label-unknown"); return; }
        due.textContent = data.total_due > 0
          ? data.customer.name + " · " + list.getAttribute("data-label-due") + " " + money.format(data.total_due) + " ₫"
          : data.customer.name + " · " + list.getAttribute("data-label-paid");
      })
      .catch(function () { due.textContent = list.getAttribute("data-label-unknown"); });
  });
  list.hidden = false;
})();
