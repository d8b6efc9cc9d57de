"""Trainers this package adds to RecBole, picked by name: ``<Model>Trainer``."""

__all__: list[str] = []
