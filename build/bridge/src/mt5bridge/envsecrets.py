"""Settings from environment variables and Docker secrets (`NAME_FILE` points at a file)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

#: A secret file is a password or a key: anything bigger (/dev/zero, a log) is refused unread.
MAX_SECRET_FILE = 65_536


class SettingError(ValueError):
    """A setting is given twice, or its secret file cannot be read."""


def read_setting(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of `name` from the environment, or from the file `NAME_FILE` names.

    Giving both is an error: one of them would be silently ignored. A trailing newline in a
    secret file (as `echo secret > file` writes it) is not part of the value.
    """
    env = os.environ if environ is None else environ
    # An empty variable counts as unset: compose files often pass `NAME=` through unfilled.
    direct = env.get(name) or None
    file_name = env.get(f"{name}_FILE") or None
    if direct is not None and file_name is not None:
        raise SettingError(f"{name} and {name}_FILE are both set; set only one")
    if file_name is not None:
        try:
            with Path(file_name).open("rb") as handle:
                data = handle.read(MAX_SECRET_FILE + 1)
        except OSError as exc:
            raise SettingError(
                f"{name}_FILE names {file_name!r}, which cannot be read: {exc.strerror}"
            ) from exc
        if len(data) > MAX_SECRET_FILE:
            raise SettingError(
                f"{name}_FILE names {file_name!r}, which holds over {MAX_SECRET_FILE} bytes: "
                "not a secret file (a device or a log?)"
            )
        try:
            return data.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise SettingError(f"{name}_FILE names {file_name!r}, which is not UTF-8 text") from exc
    return direct
