"""Report room: ``embedkit report``.

:mod:`.page` writes the HTML page and run facts; :mod:`.plots` draws the bar charts and
:mod:`.spectrogram` the log-mel soundscape view.
"""
