"""An app whose module fails to import, as a user's app with a typo would."""

from __future__ import annotations

import this_module_does_not_exist  # noqa: F401

app = None
