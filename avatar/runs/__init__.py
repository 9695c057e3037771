"""Runs: one face saying one piece of speech (`run.py`), served in turn by one service (`service.py`)."""
