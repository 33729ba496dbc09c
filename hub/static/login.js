"use strict";
if (location.search.includes("bad=1")) document.getElementById("bad").style.display = "block";
if (location.protocol === "http:" && !["localhost", "127.0.0.1", "[::1]"].includes(location.hostname)) {
  document.getElementById("plain-http").style.display = "block";
}
