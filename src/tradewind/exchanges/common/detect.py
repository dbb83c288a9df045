"""The vocabulary a venue's recogniser answers in, one line of a recording at
a time: a line can be the venue's (``MINE``), say nothing either way
(``SILENT``: an ack, a heartbeat, a REST body other formats share), or rule the
venue out (``NOT_MINE``: a field its protocol never sends). Detection over
these answers lives in ``exchanges.formats``; the rules live with each venue.
"""

from __future__ import annotations

from collections.abc import Callable

MINE = 1
SILENT = 0
NOT_MINE = -1

Recognise = Callable[[bytes], int]
