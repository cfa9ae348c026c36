"""Hypothesis settings for the parser properties.

No per-example deadline: these machines are shared and noisy, and a slow example is not
a failure of the parser.
"""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("dockyard", deadline=None, print_blob=True)
settings.load_profile("dockyard")
