"""What every check module shares: character sets, bus kinds, the Check record, small C helpers.

The helpers reproduce dtc's C semantics (``data_is_one_string``, int
truncation, ``propval_cell`` and its assertion) so each check family can stay
a plain transcription of its dtc counterpart.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dtvm.dt.tree import MarkerType, Node, Property
from dtvm.errors import DtvmError, TreeError

if TYPE_CHECKING:
    from dtvm.dt.checks.runner import CheckRunner

_LOWER = "abcdefghijklmnopqrstuvwxyz"
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGITS = "0123456789"
PROPNODECHARS = frozenset(_LOWER + _UPPER + _DIGITS + ",._+*#?-")
NODECHARS = frozenset(_LOWER + _UPPER + _DIGITS + ",._+-@")
STRICTCHARS = frozenset(_LOWER + _UPPER + _DIGITS + ",-")
ALIASCHARS = frozenset(_LOWER + _DIGITS + "-")
HEXDIGITS = frozenset("0123456789abcdefABCDEF")

# the bus types dtc's checks hang on nodes
BUS_PCI = "PCI"
BUS_SIMPLE = "simple-bus"
BUS_I2C = "i2c-bus"
BUS_SPI = "spi-bus"
BUS_GRAPH_PORT = "graph-port"
BUS_GRAPH_PORTS = "graph-ports"

REF_PHANDLE = MarkerType.REF_PHANDLE
REF_PATH = MarkerType.REF_PATH
LABEL = MarkerType.LABEL

I2C_OWN_SLAVE_ADDRESS = 1 << 30
I2C_TEN_BIT_ADDRESS = 1 << 31


class CheckError(DtvmError):
    """The tree failed error-level checks (dtc exits 2)."""

    exit_code = 2


NodeFn = Callable[["CheckRunner", "Check", Node], None]
TreeFn = Callable[["CheckRunner", "Check"], None]


@dataclass
class Check:
    name: str
    fn: NodeFn | None
    warn: bool = False
    error: bool = False
    prereqs: tuple[str, ...] = ()
    status: str = "unchecked"  # unchecked, passed, failed, prereq
    inprogress: bool = False
    tree_fn: TreeFn | None = None


@dataclass
class PhandleState:
    """dtc's static next-phandle counter plus the nodes holding each phandle.

    A phandle is free again once every node holding it is deleted: dtc looks
    for a holder with get_node_by_phandle, which does not see deleted nodes
    (an /omit-if-no-ref/ node dropped after it was given a phandle).
    """

    next: int = 1
    used: dict[int, list[Node]] = field(default_factory=dict)

    def in_use(self, phandle: int) -> bool:
        return any(not n.deleted for n in self.used.get(phandle, ()))

    def hold(self, phandle: int, node: Node) -> None:
        self.used.setdefault(phandle, []).append(node)


def _is_one_string(value: bytes) -> bool:
    """dtc's data_is_one_string: non-empty, one NUL, at the end."""
    return len(value) > 0 and value.index(0) == len(value) - 1 if 0 in value else False


def _s32(v: int) -> int:
    """A C int from the low 32 bits of ``v``."""
    v &= 0xFFFFFFFF
    return v - 0x100000000 if v & 0x80000000 else v


def _is_multiple_of(multiple: int, divisor: int) -> bool:
    """dtc's is_multiple_of (a zero divisor divides only zero)."""
    return multiple == 0 if divisor == 0 else multiple % divisor == 0


def _cstr(value: bytes) -> bytes:
    """The C string at the start of ``value`` (to the first NUL, or the end)."""
    nul = value.find(0)
    return value if nul < 0 else value[:nul]


def _unitname(node: Node) -> str:
    """dtc's get_unitname: what follows the first '@', or ''."""
    name = node.name
    at = name.find("@")
    return "" if at < 0 else name[at + 1 :]


def _basename(node: Node) -> str:
    name = node.name
    at = name.find("@")
    return name if at < 0 else name[:at]


def _cells(value: bytes, n: int) -> tuple[int, ...]:
    """The first ``n`` big-endian cells of ``value``, zero-padded where it is short."""
    need = 4 * n
    if len(value) < need:
        value = value + bytes(need - len(value))
    return struct.unpack_from(f">{n}I", value)


def _prop_is_gpio(name: str) -> bool:
    """dtc 1.6.1's prop_is_gpio."""
    if name.endswith(",nr-gpios"):
        return False
    return name.endswith("-gpios") or name == "gpios" or name.endswith("-gpio") or name == "gpio"


# -- where dtc 1.6.1 does not finish --------------------------------------------------


def _dtc_stops(node: Node, prop: Property | None, why: str) -> TreeError:
    """dtc 1.6.1 aborts, crashes or loops forever here: dtvm rejects, naming the node and property."""
    pos = prop.pos if prop is not None and prop.pos is not None else node.pos
    return TreeError(f"dtc 1.6.1 {why}; input rejected", node.path, None if prop is None else prop.name, pos)


def propval_cell(node: Node, prop: Property) -> int:
    """dtc's propval_cell: the one cell of ``prop``; dtc asserts it is exactly one cell."""
    v = prop.value
    if len(v) != 4:
        raise _dtc_stops(
            node, prop, f"aborts on this property (assertion in propval_cell: {len(v)} bytes, not one cell)"
        )
    return int.from_bytes(v, "big")

