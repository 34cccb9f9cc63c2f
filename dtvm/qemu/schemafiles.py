"""Where machine schema files are: 7.2's directly in dtvm/qemu/machines, another QEMU version's in
machines/VERSION/.  Its own module (importing nothing of dtvm but the ground, ``fileio``) so that
the reader (``config``), which ``machine`` and ``schema`` sit on, can find a schema's defaults
without an import circle."""

from __future__ import annotations

import os

from dtvm.fileio import package_dir

__all__ = ["machine_file", "schema_text"]


def schema_text(name: str) -> str | None:
    """The text of schema ``ARCH-TYPE.yaml``: 7.2's, else the one version directory that has it (a
    type only a newer QEMU has, pc-q35-10.0, has its schema only there); None when none has it."""
    root = os.path.join(package_dir("dtvm.qemu"), "machines")
    places = [os.path.join(root, name)]
    try:
        places += [os.path.join(root, d, name) for d in sorted(os.listdir(root)) if os.path.isdir(os.path.join(root, d))]
    except OSError:
        pass
    for place in places:
        try:
            with open(place, encoding="utf-8") as f:
                return f.read()
        except (OSError, ValueError):
            continue
    return None


def machine_file(name: str) -> str:
    """The text of ``dtvm/qemu/machines/NAME`` (``10.0/...`` for a version's); OSError when absent."""
    with open(os.path.join(package_dir("dtvm.qemu"), "machines", *name.split("/")), encoding="utf-8") as f:
        return f.read()
