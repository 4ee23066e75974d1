"""The app image's own sitecustomize, which the agent's must not replace: it must run too."""

import os

#: The process this ran in (the agent test reads it back through the app).
RAN_IN_PID = os.getpid()
marker_dir = os.environ.get("APP_SITECUSTOMIZE_MARKERS")
if marker_dir:
    with open(os.path.join(marker_dir, str(RAN_IN_PID)), "w") as marker:
        marker.write(__file__)
