"""``python -m recbole_autodenoise.select``: train every candidate denoiser on your data, rank
them on validation, recommend the simplest within noise of the best and read the test set once
(``command.py``). Candidates: ``candidates.py``; cells: ``cells.py``; statistics: ``stats.py``."""
