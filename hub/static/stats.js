// 统计分析 page: draws each table's chart with Apache ECharts (vendored). The table under each
// chart holds the same numbers and is what a browser without JavaScript shows.
"use strict";
(function () {
  if (typeof echarts === "undefined") return;
  const FONT = 16; // readable on a wall screen
  const charts = [];
  document.querySelectorAll(".chart[data-chart]").forEach(function (el) {
    const t = JSON.parse(el.dataset.chart);
    const spec = t.chart;
    const col = function (k) { return t.columns.findIndex(function (c) { return c.key === k; }); };
    const label = function (k) { return t.columns[col(k)].label; };
    let rows = t.rows;
    if (spec.top) rows = rows.slice(0, spec.top);
    if (spec.rows) rows = rows.slice(0, spec.rows);
    const xs = rows.map(function (r) { return r[col(spec.x)] || "（未定）"; });
    const option = {
      textStyle: { fontSize: FONT },
      tooltip: { trigger: spec.type === "pie" ? "item" : "axis", textStyle: { fontSize: FONT } },
      legend: { top: 0, textStyle: { fontSize: FONT } },
      animation: false,
    };
    if (spec.colors) option.color = spec.colors;
    if (spec.type === "pie") {
      option.series = [{
        type: "pie", radius: "62%", center: ["50%", "55%"],
        label: { fontSize: FONT, formatter: "{b}\n{c} 件（{d}%）" },
        data: rows.map(function (r) { return { name: r[col(spec.x)], value: r[col(spec.y[0])] }; }),
      }];
    } else {
      const horizontal = spec.type === "stack";
      const cat = {
        type: "category", data: xs, inverse: horizontal,
        axisLabel: { fontSize: FONT - 2, interval: 0, rotate: !horizontal && xs.length > 6 ? 30 : 0,
          formatter: function (v) { return v.length > 10 ? v.slice(0, 10) + "…" : v; } },
      };
      const val = { type: "value", axisLabel: { fontSize: FONT - 2 } };
      option.grid = { left: horizontal ? 110 : 70, right: 30, top: 50, bottom: horizontal ? 30 : 90 };
      option.xAxis = horizontal ? val : cat;
      option.yAxis = horizontal ? cat : val;
      option.series = spec.y.map(function (k) {
        return {
          name: label(k), type: spec.type === "line" ? "line" : "bar", stack: horizontal ? "all" : undefined,
          data: rows.map(function (r) { return r[col(k)]; }), barMaxWidth: 48, symbolSize: 7,
          lineStyle: { width: 3 },
        };
      });
    }
    const chart = echarts.init(el, null, { renderer: "canvas" });
    chart.setOption(option);
    charts.push(chart);
  });
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
})();
