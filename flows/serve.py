"""Both flows as deployments served from this process, for people without a
worker: `train` on demand, `retrain` on a cron schedule, one retrain at a time.

The same two deployments as `prefect.yaml` describes for a work pool.
"""

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import prefect
from prefect.schedules import Cron

from charpipe.config import ConfigError
from flows.retrain import retrain
from flows.train import train

NIGHTLY = "0 3 * * *"


def schedule(cron: str, timezone: str) -> Cron:
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"timezone: unknown time zone {timezone!r}; use an IANA "
                          "name such as 'UTC' or 'Europe/Paris'") from None
    try:
        return Cron(cron, timezone=timezone)
    except ValueError as exc:
        raise ConfigError(f"cron: {exc}; give five fields, such as "
                          f"{NIGHTLY!r} (03:00 every day)") from None


def deployments(parameters: dict, cron: str = NIGHTLY, timezone: str = "UTC"):
    nightly = schedule(cron, timezone)
    return [
        train.to_deployment(name="train", parameters=parameters,
                            tags=["charpipe"]),
        retrain.to_deployment(name="retrain", parameters=parameters,
                              schedules=[nightly],
                              concurrency_limit=1, tags=["charpipe"]),
    ]


def serve(parameters: dict, cron: str = NIGHTLY, timezone: str = "UTC") -> None:
    """Register the deployments and run their flow runs here until stopped."""
    prefect.serve(*deployments(parameters, cron, timezone))
