"""Models of recbole_galrec: one model per file, ``<lowercase name>.py`` holding class ``<Name>``."""
