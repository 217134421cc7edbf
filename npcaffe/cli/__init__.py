"""Command lines: ``runner`` is what every command of the engine and the toolkit shares
(``error: ...`` lines, exit statuses, ``--debug``/``--verbose``, progress on a terminal)."""
