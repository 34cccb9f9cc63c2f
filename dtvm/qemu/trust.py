"""What a guest tree may make QEMU do: the allow-list behind ``dtb2qemu``.

A description travels between hosts and may come from anyone, so the guest tree is data, never
host configuration: it may state only device types and qdev properties that QEMU's own catalog
has (``data/qdev-VERSION.json``, generated from QEMU), less what ``data/trust.json`` keeps for the
host (host devices, files, sockets, other host-side objects).  The back-end overlay is the host's
own configuration: trusted because the user names it, and reported (``host_resources``).

A QOM link a device needs (a CAN card's ``canbus``, acpi-erst's ``memdev``) is a host fact unless
``guest-links`` in ``trust.json`` says which objects a guest tree may make for it: then the link's
value is the object itself in ``-object`` syntax (``can-bus,id=can0``), the only type and
options the rule allows, which dtb2qemu creates before the device.
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

__all__ = ["GuestLink", "HostSelection", "Trust", "TrustError", "split_host_facts", "trust"]

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


#: a QOM object id a guest tree may give (QEMU's id_wellformed, bounded)
OBJECT_ID = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class GuestLink:
    """A QOM link whose object a guest tree may describe (``guest-links`` in trust.json).

    ``id`` says where the object's id comes from: ``numbered`` (the reader numbers the objects,
    ``can0``, ``can1``..., in the order of the devices' positions: the user's ids are invisible to
    the guest and to migration), or ``kept`` (migration names the object's RAM block by its id).
    """

    link: str
    drivers: re.Pattern[str] | None
    object: str
    options: tuple[str, ...]
    id: str
    max_size: int | None
    why: str
    #: back-ends of other QOM types a reader may find behind the link: described in the guest tree
    #: as ``object`` (what the guest sees), their host side (a file) in the back-end overlay
    host_objects: tuple[str, ...] = ()

    def value(self, ident: str, options: dict[str, str]) -> str:
        """The link's description: the object in -object syntax, the rule's options only."""
        from dtvm.qemu.opts import render

        return render(self.object, [("id", ident), *((k, options[k]) for k in self.options)], "qom link",
                      implied="qom-type")

    def parse(self, value: str, where: str) -> tuple[str, list[tuple[str, str]]]:
        """(id, options) of a described object; TrustError unless it is what the rule allows."""
        from dtvm.qemu.opts import parse

        try:
            head, pairs = parse(value, implied="qom-type", where=where)
        except DtvmError as exc:
            raise TrustError(f"{where}: {first_line(exc)}") from None
        given = dict(pairs)
        if head != self.object or len(given) != len(pairs) or set(given) != {"id", *self.options}:
            raise TrustError(f"{where}: {value!r}: a guest tree may state only -object "
                             f"{self.object},id=ID{''.join(',' + k + '=...' for k in self.options)} here")
        ident = given.pop("id")
        if not OBJECT_ID.fullmatch(ident) or (self.id == "numbered" and not re.fullmatch(r"can[0-9]{1,4}", ident)):
            raise TrustError(f"{where}: {value!r}: not an object id dtvm gives")
        if "size" in given:
            size = given["size"]
            if not re.fullmatch(r"[1-9][0-9]{0,19}", size) or (self.max_size is not None and int(size) > self.max_size):
                raise TrustError(f"{where}: {value!r}: size must be a byte count up to {self.max_size}")
        return ident, list(given.items())


@dataclass(frozen=True)
class HostSelection:
    """Which host device a device type takes (``host-selections`` in trust.json): the overlay's.

    ``any`` is how the reader states an empty selection (QEMU's: every host device), so that only
    an overlay that says so gives one; ``none`` is the selection no host device matches, which
    dtb2qemu gives a device the overlay selects nothing for, and its check start always.
    """

    driver: str
    props: tuple[str, ...]
    any: tuple[tuple[str, str], ...]
    none: tuple[tuple[str, str], ...]
    why: str
    #: the forms QEMU opens when it makes the device: (set, unset) property names
    opened_when_made: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()

    def opened(self, given: dict[str, str]) -> str | None:
        """The selection of ``given`` (-device options) QEMU opens on the host when it makes the
        device (and refuses the device without that host device), spelled as given; else None."""
        def on(key: str) -> bool:
            value = given.get(key, "")
            try:
                return int(value, 0) != 0
            except ValueError:
                return value != ""
        for set_, unset in self.opened_when_made:
            if all(on(k) for k in set_) and not any(on(k) for k in unset):
                return ",".join(f"{k}={given[k]}" for k in set_)
        return None


def _selections(data: Any) -> dict[str, HostSelection]:
    items = data.get("host-selections", []) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise TrustError("trust.json: host-selections: expected a list")
    out = {}
    for i, item in enumerate(items):
        try:
            rule = HostSelection(str(item["driver"]), tuple(str(p) for p in item["props"]),
                                 tuple((str(k), str(v)) for k, v in item["any"].items()),
                                 tuple((str(k), str(v)) for k, v in item["none"].items()), str(item["why"]),
                                 tuple((tuple(str(k) for k in form["set"]), tuple(str(k) for k in form.get("unset", ())))
                                       for form in item.get("opened-when-made", ())))
        except (KeyError, TypeError, AttributeError):
            raise TrustError(f"trust.json: host-selections[{i}]: expected {{driver, props, any, none, why}}") from None
        out[rule.driver] = rule
    return out


def _links(data: Any) -> tuple[GuestLink, ...]:
    items = data.get("guest-links", []) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise TrustError("trust.json: guest-links: expected a list")
    out = []
    for i, item in enumerate(items):
        try:
            drivers = item.get("drivers")
            out.append(GuestLink(str(item["link"]), re.compile(drivers) if isinstance(drivers, str) else None,
                                 str(item["object"]), tuple(str(o) for o in item["options"]), str(item["id"]),
                                 int(item["max-size"]) if "max-size" in item else None, str(item["why"]),
                                 tuple(str(o) for o in item.get("host-objects", ()))))
        except (KeyError, TypeError, ValueError, AttributeError, re.error):
            raise TrustError(f"trust.json: guest-links[{i}]: expected {{link, object, options, id, why}}") from None
    return tuple(out)


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
        self.guest_links = _links(rules)
        self.host_selections = _selections(rules)

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

    def guest_link(self, driver: str, link_type: str) -> GuestLink | None:
        """The rule that lets a guest tree describe the object of a link of this QOM type, or None."""
        for rule in self.guest_links:
            if rule.link == link_type and (rule.drivers is None or rule.drivers.search(driver)):
                return rule
        return None

    def link_of(self, driver: str, prop: str) -> GuestLink | None:
        """The guest-link rule of a device type's property (from the catalog), or None."""
        kind = self.types.get(driver, {}).get(prop)
        return self.guest_link(driver, kind) if kind is not None else None

    def host_reason(self, driver: str, prop: str) -> str | None:
        """Why a property is the host's to state, or None when it is the guest's."""
        if self.link_of(driver, prop) is not None:
            return None
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
        selection = rules.host_selections.get(dev.driver)
        if selection is not None and not any(k in dev.backends for k in selection.props):
            # QEMU's empty selection takes any host device: stated, so that only an overlay
            # saying so gives one (a usb-host the overlay says nothing of matches none)
            dev.backends.update(selection.any)


@functools.lru_cache(maxsize=4)
def trust(version: str = CATALOG_VERSION) -> Trust:
    """The trust model for a QEMU version's catalog, read once."""
    def read(name: str) -> Any:
        try:
            return json.loads(package_text("dtvm.qemu", f"data/{name}"))
        except (OSError, ValueError) as exc:
            raise TrustError(f"dtvm's trust data: {name}: {first_line(exc)}") from None

    return Trust(lambda: read(f"qdev-{version}.json"), read("trust.json"))
