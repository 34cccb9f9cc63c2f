"""Where machine schema files are: 7.2's directly in dtvm/qemu/machines, another QEMU version's in
machines/VERSION/.  Its own module (importing nothing of dtvm) so that the reader (``config``),
which ``machine`` and ``schema`` sit on, can find a schema's defaults without an import circle."""

from __future__ import annotations

from importlib import resources

__all__ = ["machine_file", "schema_text"]


def schema_text(name: str) -> str | None:
    """The text of schema ``ARCH-TYPE.yaml``: 7.2's, else the one version directory that has it (a
    type only a newer QEMU has, pc-q35-10.0, has its schema only there); None when none has it."""
    root = resources.files("dtvm.qemu").joinpath("machines")
    places = [root.joinpath(name)]
    try:
        places += [d.joinpath(name) for d in sorted(root.iterdir(), key=lambda e: e.name) if d.is_dir()]
    except OSError:
        pass
    for place in places:
        try:
            return place.read_text(encoding="utf-8")
        except (OSError, ValueError):
            continue
    return None


def machine_file(name: str) -> str:
    """The text of ``dtvm/qemu/machines/NAME`` (``10.0/...`` for a version's); OSError when absent."""
    where = resources.files("dtvm.qemu").joinpath("machines")
    for part in name.split("/"):
        where = where.joinpath(part)
    return where.read_text(encoding="utf-8")
