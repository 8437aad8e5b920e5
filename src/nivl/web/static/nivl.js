// nivl: small enhancements only; every page works without this file.
(function () {
  "use strict";
  // A thumbnail that fails to load shows its placeholder (CSS does this too where it can).
  function failed(img) {
    var box = img.parentNode;
    if (box && box.classList) box.classList.add("failed");
    img.remove();
  }
  document.addEventListener("error", function (event) {
    var target = event.target;
    if (target && target.tagName === "IMG") failed(target);
  }, true);
  function sweep() {
    var images = document.querySelectorAll("img");
    for (var i = 0; i < images.length; i++) {
      var img = images[i];
      if (img.complete && img.naturalWidth === 0 && img.getAttribute("src")) failed(img);
    }
  }
  // "/" focuses the search box, as on many search sites.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    var active = document.activeElement;
    if (active && (active.tagName === "INPUT" || active.tagName === "TEXTAREA")) return;
    var box = document.getElementById("q");
    if (box) { event.preventDefault(); box.focus(); box.select(); }
  });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", sweep);
  } else {
    sweep();
  }
})();
