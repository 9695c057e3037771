"""The page's tabs: Gradio components and their events, calling into `avatar.studio` for all work."""
