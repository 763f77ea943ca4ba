"""`jobrun top`, the live dashboard: `snapshot` reads, `views` draws (pure), `live` loops.

Split so that the reads can be held to cheap indexed queries, the drawing tested as text
from hand-built snapshots, and the clock and keyboard kept in one small loop.
"""
