"""``make test-monailabel`` sets ALSEG_REQUIRE_MONAILABEL=1: there a missing or broken
``monailabel`` extra fails the run instead of skipping every test of this folder."""

import os

if os.environ.get("ALSEG_REQUIRE_MONAILABEL") == "1":
    import monailabel.interfaces.app  # noqa: F401
