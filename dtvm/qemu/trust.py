"""What a guest tree may make QEMU do: the allow-list behind ``dtb2qemu``.

A description travels between hosts and may come from anyone, so the guest tree is data, never
host configuration: it may state only device types and qdev properties that QEMU's own catalog
has (``data/qdev-VERSION.json``, generated from QEMU), less what ``data/trust.json`` keeps for the
host (host devices, files, sockets, other host-side objects).  The back-end overlay is the host's
own configuration: trusted because the user names it, and reported (``host_resources``).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dtvm.errors import DtvmError, first_line
from dtvm.fileio import package_text
from dtvm.vm.model import Config

__all__ = ["Trust", "TrustError", "split_host_facts", "trust"]

#: the catalog this dtvm reads (one per QEMU version it knows)
CATALOG_VERSION = "7.2"

#: a -cpu model name as a guest tree may state it: a bare model, no features (QEMU's -cpu is not
#: QemuOpts: a comma there starts a feature list, which doubling cannot escape)
CPU_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class TrustError(DtvmError):
    """A guest tree stating something only the host may say (names the node)."""

    exit_code = 1


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    why: str


def _rules(data: Any, key: str) -> tuple[_Rule, ...]:
    items = data.get(key) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise TrustError(f"trust.json: {key}: expected a list")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("match"), str) or not isinstance(item.get("why"), str):
            raise TrustError(f"trust.json: {key}[{i}]: expected {{match: REGEX, why: TEXT}}")
        out.append(_Rule(re.compile(item["match"]), item["why"]))
    return tuple(out)


class Trust:
    """The catalog and the rules, with the questions ``dtb2qemu`` asks."""

    def __init__(self, catalog: dict[str, Any] | Callable[[], dict[str, Any]], rules: dict[str, Any]) -> None:
        # the catalog (160 kB of JSON) is read when first asked: qemu2dtb's split of host facts
        # needs only the rules
        self._catalog = catalog
        self._types: dict[str, dict[str, str]] | None = None
        self._version = "?"
        self.deny_types = _rules(rules, "deny-types")
        self.host_props = _rules(rules, "host-props")
        self.host_prop_types = _rules(rules, "host-prop-types")

    @property
    def types(self) -> dict[str, dict[str, str]]:
        """Device type -> its qdev properties and their QEMU types."""
        if self._types is None:
            catalog = self._catalog() if callable(self._catalog) else self._catalog
            types = catalog.get("types")
            if not isinstance(types, dict):
                raise TrustError("qdev catalog: no types")
            self._version = str(catalog.get("qemu", "?"))
            out: dict[str, dict[str, str]] = {}
            for name, entry in types.items():
                props: dict[str, str] = {}
                for kind, names in entry.get("props", {}).items():
                    for prop in names:
                        props[prop] = kind
                out[name] = props
            self._types = out
        return self._types

    @property
    def version(self) -> str:
        _ = self.types
        return self._version

    def host_name(self, prop: str) -> str | None:
        """Why a property is the host's by its name alone (the catalog not needed), or None."""
        for rule in self.host_props:
            if rule.pattern.search(prop):
                return rule.why
        return None

    def device(self, driver: str, where: str) -> None:
        """A device type the guest tree may create (or set properties of): TrustError otherwise."""
        for rule in self.deny_types:
            if rule.pattern.search(driver):
                raise TrustError(f"{where}: device type {driver!r} {rule.why}: a guest tree cannot create it")
        if driver not in self.types:
            raise TrustError(f"{where}: device type {driver!r} is not one QEMU {self.version} has (dtvm's catalog)")

    def host_reason(self, driver: str, prop: str) -> str | None:
        """Why a property is the host's to state, or None when it is the guest's."""
        why = self.host_name(prop)
        if why is not None:
            return why
        kind = self.types.get(driver, {}).get(prop)
        if kind is not None:
            for rule in self.host_prop_types:
                if rule.pattern.search(kind):
                    return rule.why
        return None

    def prop(self, driver: str, prop: str, where: str) -> None:
        """A property the guest tree may state for this device type: TrustError otherwise."""
        why = self.host_reason(driver, prop)
        if why is not None:
            raise TrustError(f"{where}: qemu,{prop} {why}: only the back-end overlay may state it")
        if prop not in self.types.get(driver, {}):
            raise TrustError(f"{where}: qemu,{prop}: {driver} has no such property in QEMU {self.version}")

    def cpu_model(self, model: str, where: str) -> None:
        """A -cpu value from a guest tree: one bare model name."""
        if not CPU_MODEL.fullmatch(model):
            raise TrustError(f"{where}: cpu-type {model!r}: not a CPU model name (features and options are not "
                             "taken from a guest tree)")


def split_host_facts(config: Config) -> None:
    """Move the properties that are the host's (a ROM file, a host device...) from each device's
    guest-visible properties to its host facts, so that the description keeps them in the
    back-end overlay: the guest tree stays data a host can take from anyone."""
    rules = trust()
    for dev in config.devices():
        # by name: the properties QEMU reports (info qtree) are qdev properties, never QOM links
        for key in [k for k in dev.props if rules.host_name(k) is not None]:
            dev.backends[key] = dev.props.pop(key)


@functools.lru_cache(maxsize=4)
def trust(version: str = CATALOG_VERSION) -> Trust:
    """The trust model for a QEMU version's catalog, read once."""
    def read(name: str) -> Any:
        try:
            return json.loads(package_text("dtvm.qemu", f"data/{name}"))
        except (OSError, ValueError) as exc:
            raise TrustError(f"dtvm's trust data: {name}: {first_line(exc)}") from None

    return Trust(lambda: read(f"qdev-{version}.json"), read("trust.json"))
