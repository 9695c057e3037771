"""The engine room of the talking-photo app: faces, speech, lip-sync engines and media.

Nothing in this package imports Gradio; `app.py` is the only page code.
"""
