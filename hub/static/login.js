"use strict";
if (location.search.includes("bad=1")) document.getElementById("bad").style.display = "block";
