"""Photo trials: several photos checked and ranked, each speaking the same sentence, and a review bundle.

Nothing here imports Gradio: the trials tab (ui/trials_tab.py) only wires these pieces.
"""
