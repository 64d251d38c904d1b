__version__ = "0.1.0"

# Importing any part of fastcam registers the whole method family in `fastcam.core.METHODS`, so that
# `cam_method(model, "scorecam")` works whatever the user imported first.
from . import methods as _methods  # noqa: E402,F401
