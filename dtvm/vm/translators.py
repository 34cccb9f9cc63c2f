"""The per-binding translators: what each binding's ``qemu:`` section says of a qdev driver.

A binding document (``bindings/``) carries, besides its schema, the translator between qdev and
the FDT for the devices its nodes describe: the qdev driver(s), the bus kind its children sit on
(``provides``), the back-end QEMU cannot create it without (``needs``), and the generic name of
the nodes dtvm adds for it (``node-name``).  A new device type is described, checked and rebuilt
by adding a binding file; ``$DTVM_BINDINGS`` adds directories of one's own (searched first).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

__all__ = ["Translator", "qemu_sections", "translators"]


@dataclass(frozen=True)
class Translator:
    """What the bindings say of one qdev driver (the first binding that says a thing wins)."""

    driver: str
    files: tuple[str, ...]
    node_name: str | None = None
    provides: str | None = None
    needs: str | None = None
    bus: str | None = None


@functools.lru_cache(maxsize=1)
def qemu_sections() -> tuple[tuple[tuple[str, ...], str, dict[str, Any]], ...]:
    """(compatibles, file, ``qemu:`` section) of every binding, in binding order.

    Read once per process: the translators and the driver -> compatible map both come from it,
    and loading the binding set twice cost ``qemu2dtb`` about 10 ms after QEMU answered.
    """
    from dtvm.bindings import load_bindings

    return tuple((tuple(b.compatible or ()), b.file, dict(b.qemu or {})) for b in load_bindings(cache=True).bindings())


@functools.lru_cache(maxsize=1)
def translators() -> dict[str, Translator]:
    """qdev driver -> its translator, from every binding's ``qemu:`` section (read once)."""
    out: dict[str, Translator] = {}
    for _compatible, file, section in qemu_sections():
        drivers = [section["driver"]] if isinstance(section.get("driver"), str) else list(section.get("drivers") or [])
        for driver in drivers:
            old = out.get(driver)
            fields = {key: section.get(name) if isinstance(section.get(name), str) else None
                      for key, name in (("node_name", "node-name"), ("provides", "provides"), ("needs", "needs"),
                                        ("bus", "bus"))}
            if old is None:
                out[driver] = Translator(driver, (file,), **fields)
            else:
                merged = {k: getattr(old, k) or v for k, v in fields.items()}
                out[driver] = Translator(driver, (*old.files, file), **merged)
    return out
