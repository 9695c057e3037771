"""Judging a photo as an avatar: measures, findings and a verdict, used by runs and Photo trials alike."""
