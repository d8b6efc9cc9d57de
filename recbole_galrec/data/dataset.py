"""Dataset classes this package adds to RecBole, picked by name: ``<Model>Dataset``."""

__all__: list[str] = []
