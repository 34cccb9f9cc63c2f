"""dtc's semantic checks, by dtc's names, with dtc's levels, prerequisites and order.

runner.py holds dtc's check table and the runner; fixups.py the error-level
checks and fixups; props.py and buses.py the warning-level families.
"""

from dtvm.dt.checks.common import Check, CheckError
from dtvm.dt.checks.runner import _TABLE, CHECK_NAMES, WARNING_CHECKS, CheckRunner, Finding

__all__ = ["CHECK_NAMES", "WARNING_CHECKS", "_TABLE", "Check", "CheckError", "CheckRunner", "Finding"]
