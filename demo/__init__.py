"""`make demo`: the whole Profilis pipeline on one machine, no cluster needed.

The sample Deployment (``examples/demo``) goes through the operator's real injection
function (``demo.pod``), the patched pod runs under the operator's pod runner, traffic drives
it (``demo.traffic``), Prometheus and Alertmanager scrape it with the project's alert rules
(``demo.monitoring``), and a live summary reads what the sidecar exports (``demo.summary``).
``python -m demo`` (``demo.__main__``) ties them together.
"""
