// Keeps the pay page current: polls the payment's status, counts down to its expiry, and opens
// the receipt by itself once the money is in.
(function () {
  "use strict";
  var box = document.getElementById("payment-status");
  if (!box) { return; }
  var url = box.getAttribute("data-status-url");
  var initial = box.getAttribute("data-status");
  var live = box.querySelector("[data-status-live]");
  // How often to ask, by the status the page shows; final statuses are not watched.
  var every = { pending: 3000, expired: 10000 };
  var failures = 0;

  function say(text) {
    if (live && text) { live.textContent = text; }
  }

  function changed(payment) {
    if (payment.status === "succeeded") {
      say(box.getAttribute("data-received-label"));
      window.location.assign(box.getAttribute("data-receipt-url"));
    } else {
      say(box.getAttribute("data-changed-label"));
      window.location.reload();
    }
  }

  function poll() {
    var delay = every[initial];
    if (!delay) { return; }
    // Back off while the network fails (a phone in a weak signal), up to 30 s.
    delay = Math.min(delay * Math.pow(2, failures), 30000);
    window.setTimeout(function () {
      fetch(url, { headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" })
        .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
        .then(function (payment) {
          failures = 0;
          if (payment && payment.status && payment.status !== initial) { changed(payment); return; }
          // Money arrived short: the amount still due, and its QR, changed.
          var shown = box.getAttribute("data-qr-payload");
          if (shown && payment && payment.qr && payment.qr.payload !== shown) {
            say(box.getAttribute("data-changed-label"));
            window.location.reload();
            return;
          }
          poll();
        })
        .catch(function () { failures = Math.min(failures + 1, 4); poll(); });
    }, delay);
  }

  // Ask at once when the customer comes back from the banking app.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState !== "visible" || !every[initial]) { return; }
    fetch(url, { headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (payment) { if (payment && payment.status !== initial) { changed(payment); } })
      .catch(function () {});
  });

  var expiry = box.querySelector("[data-expires-at]");
  var clock = box.querySelector("[data-countdown]");
  if (expiry && clock && initial === "pending") {
    var deadline = Date.parse(expiry.getAttribute("data-expires-at"));
    var leftLabel = clock.getAttribute("data-left-label");
    clock.hidden = false;
    var tick = function () {
      var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
      if (left <= 0) {
        clock.textContent = clock.getAttribute("data-done-label");
        clock.classList.add("is-late");
        return;
      }
      var mm = String(Math.floor(left / 60)).padStart(2, "0");
      var ss = String(left % 60).padStart(2, "0");
      clock.textContent = leftLabel + " " + mm + ":" + ss;
      window.setTimeout(tick, 1000);
    };
    tick();
  }
  poll();
})();
