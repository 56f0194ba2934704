"""How far a sheet is looked at, shared by the package scan and the reader."""

HEADER_SCAN_ROWS = 30
"""Title and notes rows above the header are looked through this far."""
MAX_COLUMNS = 16_384
"""Excel's widest sheet: every column up to it is loaded with a stated type, never guessed."""
