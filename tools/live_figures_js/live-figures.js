/* sigprop live figures: draws every <div class="sigprop-live"> of the page with vega-embed.
 * Nothing heavy is loaded with the page: when a figure comes within half a screen of the viewport
 * (IntersectionObserver), Vega, Vega-Lite and vega-embed (served beside this file, once a page)
 * and the figure's own file (its Vega-Lite specification and data, `data-src`, written by
 * tools/live_figures.py) are fetched and the figure replaces its placeholder. Without
 * IntersectionObserver, a "Load figure" button does the same.
 * The views are kept in window.sigpropLive (by figure name and by element id) for the tests. */
(function () {
  "use strict";
  var views = (window.sigpropLive = window.sigpropLive || {});
  var pending = (window.sigpropLiveReady = window.sigpropLiveReady || []);
  // the folder this script is served from (_static): the libraries and figure files are there
  var base = (document.currentScript && document.currentScript.src) || "";
  base = base.slice(0, base.lastIndexOf("/") + 1);
  var LIBS = ["vega.min.js", "vega-lite.min.js", "vega-embed.min.js"];
  var libs = null;

  function loadLibs() {
    if (libs) return libs;
    libs = Promise.all(LIBS.map(function (file) {
      return new Promise(function (resolve, reject) {
        var s = document.createElement("script");
        s.src = base + file;
        s.async = false; // fetched in parallel, run in this order
        s.onload = resolve;
        s.onerror = function () { reject(new Error("could not load " + file)); };
        document.head.appendChild(s);
      });
    }));
    return libs;
  }

  function rows(cols) {
    // the figure file stores a table as keys + one list of values per row
    return cols.rows.map(function (r) {
      var o = {};
      for (var k = 0; k < cols.keys.length; k++) o[cols.keys[k]] = r[k];
      return o;
    });
  }

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
    if (el.dataset.ready) return;
    el.dataset.ready = "loading";
    var file = fetch(base + el.dataset.src).then(function (r) {
      if (!r.ok) throw new Error("could not load " + el.dataset.src + " (" + r.status + ")");
      return r.json();
    });
    var done = Promise.all([file, loadLibs()])
      .then(function (got) {
        var spec = got[0].spec;
        spec.datasets = {};
        Object.keys(got[0].data).forEach(function (k) { spec.datasets[k] = rows(got[0].data[k]); });
        fitWidth(spec, el);
        el.textContent = "";
        return vegaEmbed(el, spec, { actions: false, renderer: (spec.usermeta || {}).renderer || "svg", tooltip: true });
      })
      .then(function (result) {
        views[el.dataset.live] = views[el.id] = result.view;
        el.style.minHeight = "";
        el.dataset.ready = "true";
        return result.view;
      })
      .catch(function (err) {
        el.dataset.ready = "failed";
        el.textContent = "This figure could not be drawn (" + err + ").";
        console.error("sigprop live figure " + el.dataset.live + ": " + err);
      });
    pending.push(done);
    return done;
  }

  function button(el) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "sigprop-live-load";
    b.textContent = "Load figure";
    b.style.display = "block";
    b.style.margin = "1em auto";
    b.addEventListener("click", function () { draw(el); });
    var p = el.querySelector(".sigprop-live-placeholder") || el;
    p.textContent = p.textContent.replace("drawn as it comes into view", "drawn on request");
    p.appendChild(b);
  }

  function init() {
    var els = Array.prototype.slice.call(document.querySelectorAll("div.sigprop-live"));
    if (!("IntersectionObserver" in window)) {
      els.forEach(button);
      return;
    }
    // a margin of half a screen above and below: the figure is drawn before the reader gets
    // there (Vega loads and runs in well under a second), while a figure that starts more
    // than half a screen below the first screen costs a first visit nothing
    var io = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        if (e.isIntersecting) {
          io.unobserve(e.target);
          draw(e.target);
        }
      });
    }, { rootMargin: "50% 0px 50% 0px" });
    els.forEach(function (el) { io.observe(el); });
  }
  window.sigpropLiveDraw = draw;
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
