// sigprop's page behaviour (tools/sigprop_site.py adds it to every page).
// A figure in a cell output keeps at least 70 % of its natural width (figures are drawn
// with sigprop.plotting at ~440 px a panel, so a panel stays >= ~300 px): on a phone a
// two-panel figure scrolls sideways inside its box instead of shrinking to unreadable.
(function () {
  "use strict";
  function keepWidth(img) {
    if (img.naturalWidth > 0) {
      img.style.minWidth = Math.round(0.7 * img.naturalWidth) + "px";
    }
  }
  function run() {
    document.querySelectorAll("div.cell_output img").forEach(function (img) {
      if (img.complete) { keepWidth(img); } else { img.addEventListener("load", function () { keepWidth(img); }); }
    });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", run); } else { run(); }
})();
