// nivl: small enhancements only; every page works without this file.
(function () {
  "use strict";
  // A thumbnail that fails to load shows its placeholder (CSS does this too where it can).
  function failed(img) {
    var fallback = img.getAttribute("data-fallback");
    if (fallback) {  // the mirrored copy, when upstream's bigger picture cannot be had
      img.removeAttribute("data-fallback");
      img.src = fallback;
      return;
    }
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
  // Autocomplete: an ARIA combobox over /suggest (arrows move, Enter picks, Escape closes).
  function autocomplete(box) {
    var form = box.form, list = document.createElement("ul"), timer = 0, asked = 0, active = -1;
    list.id = "q-suggestions";
    list.className = "suggestions";
    list.setAttribute("role", "listbox");
    list.setAttribute("aria-label", "Suggestions");
    list.hidden = true;
    box.setAttribute("role", "combobox");
    box.setAttribute("aria-autocomplete", "list");
    box.setAttribute("aria-controls", list.id);
    box.setAttribute("aria-expanded", "false");
    box.parentNode.insertBefore(list, box.nextSibling);
    function close() {
      list.hidden = true; active = -1;
      box.setAttribute("aria-expanded", "false");
      box.removeAttribute("aria-activedescendant");
    }
    function mark(index) {
      var options = list.children;
      active = index;
      for (var i = 0; i < options.length; i++) {
        options[i].setAttribute("aria-selected", i === index ? "true" : "false");
      }
      if (index >= 0) box.setAttribute("aria-activedescendant", options[index].id);
      else box.removeAttribute("aria-activedescendant");
    }
    function pick(text) { box.value = text; close(); form.submit(); }
    function show(suggestions) {
      list.textContent = "";
      suggestions.forEach(function (s, i) {
        var item = document.createElement("li"), text = document.createElement("span"),
          count = document.createElement("span");
        item.id = "q-suggestion-" + i;
        item.setAttribute("role", "option");
        item.setAttribute("aria-selected", "false");
        text.className = "text";
        text.textContent = s.text;
        item.appendChild(text);
        count.className = "count";
        count.textContent = s.count.toLocaleString();
        item.appendChild(count);
        item.addEventListener("mousedown", function (event) { event.preventDefault(); pick(s.text); });
        list.appendChild(item);
      });
      active = -1;
      list.hidden = !suggestions.length;
      box.setAttribute("aria-expanded", suggestions.length ? "true" : "false");
    }
    box.addEventListener("input", function () {
      clearTimeout(timer);
      var q = box.value, ticket = ++asked;
      if (!q.trim()) { close(); return; }
      timer = setTimeout(function () {
        fetch("/suggest?q=" + encodeURIComponent(q)).then(function (r) {
          return r.ok ? r.json() : { suggestions: [] };
        }).then(function (body) {
          if (ticket === asked && document.activeElement === box) show(body.suggestions);
        }).catch(close);
      }, 150);
    });
    box.addEventListener("keydown", function (event) {
      var n = list.children.length;
      if (event.key === "Escape" && !list.hidden) { event.preventDefault(); close(); }
      else if ((event.key === "ArrowDown" || event.key === "ArrowUp") && n && !list.hidden) {
        event.preventDefault();
        mark(event.key === "ArrowDown" ? (active + 1) % n : (active - 1 + n) % n);
      } else if (event.key === "Enter" && active >= 0 && !list.hidden) {
        event.preventDefault();
        pick(list.children[active].firstChild.textContent);
      }
    });
    box.addEventListener("blur", close);
  }
  var search = document.getElementById("q");
  if (search && search.form && window.fetch) autocomplete(search);
  // The Cite box: a button that copies the chosen style's text (the radios need no script).
  function citeCopy(box) {
    var button = box.querySelector(".copy-citation"), status = box.querySelector(".copy-status");
    if (!button || !navigator.clipboard) return;
    button.hidden = false;
    box.addEventListener("change", function () { status.textContent = ""; });
    button.addEventListener("click", function () {
      var chosen = box.querySelector("input[name=cite-style]:checked");
      var shown = chosen && box.querySelector("#citation-" + chosen.value + " .citation-text");
      if (!shown) return;
      navigator.clipboard.writeText(shown.getAttribute("data-text")).then(function () {
        status.textContent = "Copied " + box.querySelector("label[for=" + chosen.id + "]").textContent;
      }, function () { status.textContent = "Could not copy: select the text instead"; });
    });
  }
  var cite = document.querySelector("section.cite");
  if (cite) citeCopy(cite);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", sweep);
  } else {
    sweep();
  }
})();
