"""Errors a user can fix: the command line prints their message and exits with status 2."""


class GALRecError(Exception):
    """Base class of every user-facing error of ``recbole_galrec``.

    The message says what was wrong, where it was looked for and what to do; the command line prints it
    without a traceback.
    """


class ConfigError(GALRecError, ValueError):
    """A config file, a command-line override or a model key is missing, malformed or out of range."""


class ResumeError(ConfigError):
    """A ``--resume`` checkpoint is unreadable or of another run: the run cannot continue from it (a new run can)."""


class UnknownModelError(GALRecError, ValueError):
    """No model of that name in ``recbole_galrec`` nor in RecBole."""


class DatasetNotFoundError(GALRecError, FileNotFoundError):
    """The dataset's atomic files are neither on disk nor downloadable."""


class PrepareError(GALRecError):
    """A raw dataset file or the output folder of ``python -m recbole_galrec.prepare`` is unusable."""


class TrainingError(GALRecError, RuntimeError):
    """Training cannot go on (a NaN or infinite loss); the message names where and what was kept."""


class DataError(GALRecError, ValueError):
    """A dataset's atomic files are readable but their content cannot serve the run (e.g. no item has text)."""
