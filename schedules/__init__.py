"""The scheduling domain, pure: values in, values out; no database, no clock, no I/O.

- `model`: `Programme`, `ContentItem`, `Slot`, the time zone (`TZ`) and the priority classes.
- `recurrence`: RRULE expansion in Asia/Ho_Chi_Minh (`occurrences`, `check_rrule`).
- `conflicts`: same-class clashes on shared receivers (`find_clash`, `Clash.describe`).
- `plan`: placement by priority and order (`place`) and per-receiver plans with versions (`compile_plans`).
"""

from .conflicts import Clash, find_clash
from .model import RANK, TZ, ContentItem, Order, Priority, Programme, Slot
from .plan import ReceiverPlan, compile_plans, place, version_of
from .recurrence import RecurrenceError, check_rrule, occurrences

__all__ = ["Clash", "find_clash", "RANK", "TZ", "ContentItem", "Order", "Priority", "Programme", "Slot",
           "ReceiverPlan", "compile_plans", "place", "version_of", "RecurrenceError", "check_rrule", "occurrences"]
