"""Sound offline: ``-audiodev`` and the audio back-end each sound device reports.

Split from ``offline.py`` (the device model) and ``offline_argv.py`` (the option syntax) because
the audio back-end follows rules of its own, measured on QEMU 7.2 and 10.0 (docs/qemu.md):

- QEMU reports no audio back-end itself (7.2 has no query-audiodevs; dtvm does not read 10.0's),
  only each sound device's ``audiodev`` property, the back-end's id.  So an ``-audiodev`` is in
  the description only through the devices that name it, and which driver it has is never seen.
- ``-audiodev none`` is the back-end whose start cannot depend on the host; the others (alsa, pa,
  sdl, wav, ...) start or fail by what the host has (a sound server, a writable file), which
  offline cannot know: refused by name.
- A sound device without ``audiodev=``: QEMU 7.2 gives it the first ``-audiodev`` of the command
  line (with a deprecation warning); without any, the first audio driver that starts on the host
  (``alsa`` on the machine measured), named after it, which is the host's: refused by name.
  QEMU 10.0 takes no ``-audiodev`` as a default: always the host's default driver, refused.
"""

from __future__ import annotations

from typing import Any

from dtvm.qemu.models import OfflineError
from dtvm.vm.model import Device

__all__ = ["parse_audiodev", "set_audiodev"]

#: the keys of ``-audiodev none`` offline takes (QAPI Audiodev: its per-direction options are
#: refused, as what QEMU checks of them at start is not modelled)
_KEYS = frozenset({"driver", "id", "timer-period"})


#: the longest JSON -audiodev read (libvirt's are under 100 characters)
_JSON_LIMIT = 4096


def _json_options(text: str, where: str) -> dict[str, str]:
    """A JSON ``-audiodev`` (libvirt's form; QEMU's visitor takes an object where the text starts
    with ``{``): its members as keyval would give them, integers as QAPI takes them."""
    import json

    if len(text) > _JSON_LIMIT:
        raise OfflineError(f"{where[:80]}...: longer than {_JSON_LIMIT} characters, not in the offline model")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OfflineError(f"{where}: not valid JSON ({exc.msg}; QEMU refuses it)") from None
    if not isinstance(data, dict):
        raise OfflineError(f"{where}: not a JSON object (QEMU refuses it)")
    out: dict[str, str] = {}
    for key, value in data.items():
        if key == "timer-period" and not (isinstance(value, int) and not isinstance(value, bool)):
            raise OfflineError(f"{where}: Parameter 'timer-period' expects uint64 (QEMU refuses it)")
        if key != "timer-period" and not isinstance(value, str):
            raise OfflineError(f"{where}: {key}: not in the offline model as JSON {type(value).__name__} (use online mode)")
        out[key] = str(value)
    return out


def parse_audiodev(text: str, where: str) -> str:
    """The id of an ``-audiodev`` (keyval syntax, QEMU's qobject input visitor: the last of a
    repeated key wins; or JSON); OfflineError for what QEMU refuses and what offline cannot know."""
    from dtvm.qemu.opts import OptionError, parse

    head: str | None = None
    if text.lstrip().startswith("{"):
        opts = _json_options(text, where)
    else:
        try:
            head, pairs = parse(text, implied="driver", keyval=True)
        except OptionError as exc:
            raise OfflineError(f"{where}: {exc}") from None
        opts = dict(pairs)
    driver = opts.get("driver", head)
    if not driver:
        raise OfflineError(f"{where}: Parameter 'driver' is missing (QEMU refuses it)")
    if "id" not in opts:
        raise OfflineError(f"{where}: Parameter 'id' is missing (QEMU refuses it)")
    if driver != "none":
        raise OfflineError(f"{where}: audio driver {driver!r} starts or fails by what the host has; only -audiodev none "
                           "is in the offline model (use online mode)")
    extra = sorted(set(opts) - _KEYS)
    if extra:
        raise OfflineError(f"{where}: {extra[0]}=: not in the offline model (use online mode)")
    if not opts["id"]:
        raise OfflineError(f"{where}: an empty id is not in the offline model (use online mode)")
    if "timer-period" in opts:
        try:
            period = int(opts["timer-period"], 0)
        except ValueError:
            raise OfflineError(f"{where}: Parameter 'timer-period' expects integer (QEMU refuses it)") from None
        if not 0 <= period < 1 << 32:
            raise OfflineError(f"{where}: timer-period={opts['timer-period']}: out of range (QEMU refuses it)")
    return opts["id"]


def set_audiodev(targets: list[Device], profile: dict[str, Any], user: dict[str, str], audiodevs: list[str],
                 version: str, where: str) -> None:
    """The audio back-end a sound device reports (a device whose type has the ``audiodev``
    property, QEMU's own list in the profile): the one it names, which must be an -audiodev of the
    command line, else QEMU's default where the command line decides it."""
    target = next((t for t in reversed(targets) if "audiodev" in profile["props-of"].get(t.driver, [])), None)
    if target is None:
        return
    if "audiodev" in user:
        if not user["audiodev"]:  # QEMU takes an empty one: what it then picks is not measured
            raise OfflineError(f"{where}: an empty audiodev= is not in the offline model (use online mode)")
        if user["audiodev"] not in audiodevs:
            raise OfflineError(f"{where}: audiodev {user['audiodev']!r} is not an -audiodev of this command line "
                               "(QEMU refuses it)")
        target.backends["audiodev"] = user["audiodev"]
        return
    if audiodevs and version == "7.2":
        target.backends["audiodev"] = audiodevs[0]  # QEMU 7.2: the first -audiodev (deprecated)
        return
    taken = "" if version == "7.2" else f" (QEMU {version} takes no -audiodev as a default)"
    raise OfflineError(f"{where}: without audiodev= QEMU gives the device the host's default audio back-end{taken}, "
                       "which is not in the offline model: give -audiodev none,id=ID and audiodev=ID (or use online mode)")
