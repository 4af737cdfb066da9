"""Table formats of the field tools, shared by train (labels in) and predict (detections out).

* :mod:`.raven` — Raven Pro selection tables: :func:`read_raven`, :func:`write_raven`, :func:`find_tables`.
* :mod:`.detections` — detection tables in Raven, Audacity, CSV, Kaleidoscope and Parquet form.
"""

from embedkit.tables.raven import TableError, find_tables, raven_frame, read_raven, table_key, write_raven

__all__ = ["TableError", "find_tables", "raven_frame", "read_raven", "table_key", "write_raven"]
