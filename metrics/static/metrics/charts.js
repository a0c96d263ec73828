// Draws the dashboard's charts with the bundled Chart.js. The page embeds every
// chart's figures as JSON (metrics/charts.py); each <canvas data-chart="id">
// draws the chart of that id. The table beside each chart has the same figures,
// so the page stays readable without JavaScript.
(function () {
  "use strict";

  var BAR = "#1d3557";
  var SECOND = "#8fb3d9";
  var HIGHLIGHT = "#c1440e";

  function colours(chart, datasetIndex) {
    var base = datasetIndex === 0 ? BAR : SECOND;
    if (chart.highlight === null || chart.highlight === undefined) {
      return base;
    }
    return chart.labels.map(function (_, index) {
      return index === chart.highlight ? HIGHLIGHT : base;
    });
  }

  function config(chart) {
    var horizontal = chart.kind === "horizontal";
    var valueAxis = { beginAtZero: true, title: { display: true, text: chart.unit } };
    if (chart.max !== undefined) {
      valueAxis.max = chart.max;
    }
    var scales = horizontal ? { x: valueAxis } : { y: valueAxis };
    return {
      type: "bar",
      data: {
        labels: chart.labels,
        datasets: chart.datasets.map(function (dataset, index) {
          return {
            label: dataset.label,
            data: dataset.data,
            backgroundColor: colours(chart, index),
          };
        }),
      },
      options: {
        indexAxis: horizontal ? "y" : "x",
        animation: false,
        maintainAspectRatio: false,
        scales: scales,
        plugins: { legend: { display: chart.datasets.length > 1 } },
      },
    };
  }

  function draw() {
    var source = document.getElementById("dashboard-charts");
    if (!source || typeof Chart === "undefined") {
      return;
    }
    var charts = JSON.parse(source.textContent);
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var chart = charts[canvas.dataset.chart];
      if (chart) {
        new Chart(canvas, config(chart));
        canvas.dataset.drawn = "true";
      }
    });
  }

  document.addEventListener("DOMContentLoaded", draw);
})();
