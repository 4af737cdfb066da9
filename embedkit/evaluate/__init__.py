"""Evaluation room: ``embedkit evaluate``.

:mod:`.run` scores fit configurations on grouped-CV windows and composed soundscapes; :mod:`.data` builds
and caches them; :mod:`.compose` mixes calls over backgrounds. ``python -m embedkit.evaluate`` is
``embedkit evaluate``.
"""
