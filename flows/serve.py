"""Both flows as deployments served from this process, for people without a
worker: `train` on demand, `retrain` on a cron schedule, one retrain at a time.

The same two deployments as `prefect.yaml` describes for a work pool.
"""

import prefect
from prefect.schedules import Cron

from flows.retrain import retrain
from flows.train import train

NIGHTLY = "0 3 * * *"


def deployments(parameters: dict, cron: str = NIGHTLY, timezone: str = "UTC"):
    return [
        train.to_deployment(name="train", parameters=parameters,
                            tags=["charpipe"]),
        retrain.to_deployment(name="retrain", parameters=parameters,
                              schedules=[Cron(cron, timezone=timezone)],
                              concurrency_limit=1, tags=["charpipe"]),
    ]


def serve(parameters: dict, cron: str = NIGHTLY, timezone: str = "UTC") -> None:
    """Register the deployments and run their flow runs here until stopped."""
    prefect.serve(*deployments(parameters, cron, timezone))
