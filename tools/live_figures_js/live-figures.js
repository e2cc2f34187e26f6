/* sigprop live figures: draws every <div class="sigprop-live"> of the page with vega-embed
 * from the Vega-Lite specification (data included) that tools/live_figures.py wrote beside it.
 * The views are kept in window.sigpropLive (by figure name and by element id) for the tests. */
(function () {
  "use strict";
  var views = (window.sigpropLive = window.sigpropLive || {});
  var pending = (window.sigpropLiveReady = window.sigpropLiveReady || []);

  function fitWidth(spec, el) {
    // concatenated views cannot take width "container": give each the width that fits
    var w = Math.max(220, Math.min(520, (el.clientWidth || 360) - 110));
    (spec.vconcat || []).forEach(function (view) {
      if (typeof view.width === "number") view.width = w;
      (view.layer || []).forEach(function (layer) {
        if (typeof layer.width === "number") layer.width = w;
      });
    });
  }

  function draw(el) {
    var spec = JSON.parse(document.getElementById(el.id + "-spec").textContent);
    fitWidth(spec, el);
    var done = vegaEmbed(el, spec, { actions: false, renderer: (spec.usermeta || {}).renderer || "svg", tooltip: true })
      .then(function (result) {
        views[el.dataset.live] = views[el.id] = result.view;
        el.dataset.ready = "true";
        return result.view;
      })
      .catch(function (err) {
        el.textContent = "This figure could not be drawn (" + err + ").";
        console.error("sigprop live figure " + el.dataset.live + ": " + err);
      });
    pending.push(done);
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("div.sigprop-live"), draw);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
