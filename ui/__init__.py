"""The page's tabs, in two layers.

`talk_handlers.py` and `trials_handlers.py` say what each event does, as plain functions of paths,
strings and the Studio that yield views (dataclasses); `refusals.py` turns a problem the visitor
can fix into one sentence for both. `talk_tab.py` and `trials_tab.py` lay out the components and
wire the events, and `views.py` maps every view onto component updates. `photo_input.py` is the
face photo box, which hands uploads to the app unopened.
"""
