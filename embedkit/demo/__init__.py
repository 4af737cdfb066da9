"""Demo room: ``make demo`` / ``embedkit demo``.

:mod:`.run` runs extract → fit → infer → score on a seeded synthetic BirdCLEF-shaped dataset (:mod:`.data`)
of procedural animal calls (:mod:`.calls`).
"""
