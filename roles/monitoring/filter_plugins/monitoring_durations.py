"""Prometheus durations in the monitoring role's templates: checked, and as seconds for PromQL.

PromQL compares numbers, not durations ("time() - x > 93600"), so a
threshold given as "26h" is turned into seconds here. Prometheus's own
duration syntax (model.ParseDuration: units y w d h m s ms, largest first,
each at most once) is the one accepted, so a value that works in a rule's
``for:`` works here too.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

_UNITS = (("y", 365 * 86400.0), ("w", 7 * 86400.0), ("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0),
          ("ms", 0.001))
_DURATION = re.compile("".join(rf"(?:(?P<{unit}>[0-9]+){unit})?" for unit, _ in _UNITS))


def monitoring_seconds(value: object) -> float:
    """Seconds of a Prometheus duration: ``26h`` gives 93600."""
    text = str(value)
    match = _DURATION.fullmatch(text)
    if not text or match is None or not any(match.group(unit) for unit, _ in _UNITS):
        raise AnsibleFilterError(f"monitoring_seconds: {text!r} is not a Prometheus duration (such as 90s, 5m, 26h)")
    seconds = sum(int(match.group(unit)) * factor for unit, factor in _UNITS if match.group(unit))
    return int(seconds) if seconds == int(seconds) else seconds


class FilterModule:
    def filters(self) -> dict[str, object]:
        return {"monitoring_seconds": monitoring_seconds}
