"""Scoring: models turn features into scores; a separate Decision turns a score into a verdict."""
