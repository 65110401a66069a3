(function () {
  var root = document.documentElement, errors = 0;
  root.dataset.errors = "0";
  window.onerror = function () { errors += 1; root.dataset.errors = String(errors); };
  window.addEventListener("load", function () {
    var charts = document.querySelectorAll("svg.chart"), drawn = 0;
    for (var i = 0; i < charts.length; i++) {
      var marks = charts[i].querySelectorAll(".mark");
      for (var j = 0; j < marks.length; j++) {
        var box = marks[j].getBoundingClientRect();
        if (box.width > 0 || box.height > 0) { drawn += 1; break; }
      }
    }
    root.dataset.chartsExpected = String(charts.length);
    root.dataset.charts = String(drawn);
  });
})();
