// The receipt's "print or save as PDF" button: the browser's own print dialog saves PDFs too.
// Shown only when this script runs (the button is hidden in the page without scripts).
(function () {
  "use strict";
  var buttons = document.querySelectorAll("[data-print]");
  Array.prototype.forEach.call(buttons, function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });
})();
