// chatwarden: auto-refresh of live pages (no library, no network beyond this site).
(function () {
  var secs = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  if (!secs) { return; }
  var typing = false;
  document.addEventListener("focusin", function (e) { typing = /INPUT|SELECT|TEXTAREA/.test(e.target.tagName); });
  document.addEventListener("focusout", function () { typing = false; });
  setInterval(function () {
    if (!typing && document.visibilityState === "visible") { location.reload(); }
  }, secs * 1000);
})();
