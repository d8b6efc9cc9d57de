"""Files written whole or not at all: a new temporary file beside the target, then a rename. No torch here, so the
benchmark's parent process can use it too."""

import os
import secrets
from collections.abc import Callable
from typing import IO


def new_temporary(path: str) -> tuple[str, int]:
    """A new file beside ``path``, created exclusively with mode 0666 less the umask (``mkstemp`` gives 0600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = f"{os.path.abspath(path)}.{secrets.token_hex(4)}.tmp"
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue


def write_atomic(path, write: Callable[[IO], None], binary: bool = False, newline: str | None = None) -> None:
    """Call ``write`` on a new temporary file beside ``path`` (UTF-8 text, with ``open``'s ``newline``, or bytes
    when ``binary``), then rename it to ``path``: a reader, or a kill while writing, never sees half a file where the
    previous one was; writers side by side each use a temporary of their own. The folder is created; on failure the
    temporary is removed."""
    path = str(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp, fd = new_temporary(path)
    try:
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline=newline) as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_png(figure, path) -> None:
    """A matplotlib ``figure`` as a PNG written whole (:func:`write_atomic`), without the software tag, so its bytes
    depend on the figure alone."""
    write_atomic(path, lambda f: figure.savefig(f, format="png", dpi=110, metadata={"Software": None}), binary=True)
