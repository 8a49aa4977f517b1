// Copy buttons of the VietQR checkout: a customer paying on this very phone copies the account,
// the amount and the transfer note into the banking app instead of typing them.
(function () {
  "use strict";
  var status = document.querySelector("[data-copy-status]");
  var buttons = document.querySelectorAll("button[data-copy]");
  if (!buttons.length) { return; }

  function announce(text) {
    if (!status) { return; }
    // Cleared first so the same message twice is still announced.
    status.textContent = "";
    window.setTimeout(function () { status.textContent = text; }, 50);
  }

  // navigator.clipboard needs a secure context (https or localhost); a phone on a plain-http
  // address falls back to selecting a temporary field and the older copy command.
  function fallbackCopy(text) {
    var field = document.createElement("textarea");
    field.value = text;
    field.setAttribute("readonly", "");
    field.className = "visually-hidden";
    document.body.appendChild(field);
    field.select();
    var done = false;
    try { done = document.execCommand("copy"); } catch (e) { done = false; }
    document.body.removeChild(field);
    return done ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallbackCopy(text); });
    }
    return fallbackCopy(text);
  }

  Array.prototype.forEach.call(buttons, function (button) {
    var label = button.querySelector(".copy-label");
    var original = label ? label.textContent : "";
    var timer = null;
    button.hidden = false;
    button.addEventListener("click", function () {
      var value = button.getAttribute("data-copy");
      copy(value).then(function () {
        button.classList.add("is-copied");
        if (label && status) { label.textContent = status.getAttribute("data-copied-label"); }
        announce((status ? status.getAttribute("data-copied-label") : "") + ": " + value);
        window.clearTimeout(timer);
        timer = window.setTimeout(function () {
          button.classList.remove("is-copied");
          if (label) { label.textContent = original; }
        }, 2500);
      }, function () {
        announce(status ? status.getAttribute("data-failed-label") : "");
      });
    });
  });
})();
