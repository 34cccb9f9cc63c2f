"""Where a binding set comes from: the YAML documents, or the on-disk cache when it is current.

Above both ``load`` (YAML) and ``cache`` (which itself loads YAML to rebuild), so that neither
needs the other's entry point.
"""

from __future__ import annotations

from dtvm.bindings.cache import load_cached
from dtvm.bindings.load import BindingSet, default_dirs, load_yaml

__all__ = ["load_bindings"]


def load_bindings(dirs: list[str] | None = None, *, cache: bool = False) -> BindingSet:
    """Load every binding under ``dirs`` (default: dtvm's own); BindingError on the first broken one.

    With ``cache=True`` the set (and every node's compiled validator) comes from
    the on-disk cache when it is current, and is written there when it is not;
    see ``cache.py``. The result is the same either way.
    """
    if dirs is None:
        dirs = default_dirs()
    if cache:
        return load_cached(list(dirs))
    return load_yaml(list(dirs))
