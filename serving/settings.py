"""The serve section of the settings the server was started with ($CUSTINTEL_PARAMS), read once."""

from __future__ import annotations

import os
from functools import lru_cache


@lru_cache(maxsize=1)
def settings():
    from custintel.config import PARAMS_ENV, load_settings

    return load_settings(os.environ.get(PARAMS_ENV))


def serve_settings():
    return settings().serve
