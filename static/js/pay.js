// Keeps the pay page current: polls the payment's status and counts down to its expiry.
(function () {
  "use strict";
  var box = document.getElementById("payment-status");
  if (!box) { return; }
  var url = box.getAttribute("data-status-url");
  var initial = box.getAttribute("data-status");
  var watching = { pending: 3000, expired: 15000 };

  function poll() {
    var delay = watching[initial];
    if (!delay) { return; }
    window.setTimeout(function () {
      fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (payment) {
          if (payment && payment.status !== initial) {
            if (payment.status === "succeeded") {
              window.location.assign(box.getAttribute("data-receipt-url"));
            } else {
              window.location.reload();
            }
            return;
          }
          poll();
        })
        .catch(poll);
    }, delay);
  }

  var expiry = box.querySelector("[data-expires-at]");
  if (expiry && initial === "pending") {
    var deadline = Date.parse(expiry.getAttribute("data-expires-at"));
    var label = expiry.textContent;
    var tick = function () {
      var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
      var mm = String(Math.floor(left / 60)).padStart(2, "0");
      var ss = String(left % 60).padStart(2, "0");
      expiry.textContent = label + " (" + mm + ":" + ss + ")";
      if (left > 0) { window.setTimeout(tick, 1000); }
    };
    tick();
  }
  poll();
})();
