"""`charpipe serve`'s deployments, built without a server; bad schedules refused.

The flows are imported inside the tests: importing them at collection would
hide whether the command line imports Prefect before checking its flags.
"""

import pytest

from charpipe.config import ConfigError


def test_train_on_demand_and_retrain_nightly_one_at_a_time():
    from flows.serve import deployments

    train, retrain = deployments({"preset": "smoke", "source": "/data/corpus.txt"})
    assert (train.name, retrain.name) == ("train", "retrain")
    assert train.schedules in (None, [])
    [nightly] = retrain.schedules
    assert (nightly.schedule.cron, nightly.schedule.timezone) == ("0 3 * * *", "UTC")
    assert retrain.concurrency_limit == 1
    for deployment in (train, retrain):
        assert deployment.parameters["source"] == "/data/corpus.txt"


def test_parameters_are_typed_for_deployment_run_to_check():
    from prefect.utilities.callables import parameter_schema

    from flows.retrain import retrain
    from flows.train import train

    def types(flow):
        return {name: str(prop.get("anyOf", prop.get("type")))
                for name, prop in parameter_schema(flow).properties.items()}

    trained, retrained = types(train), types(retrain)
    assert set(trained) < set(retrained)
    assert {k: retrained[k] for k in trained} == trained
    assert "integer" in trained["epochs"] and "integer" in trained["batch_size"]
    assert "number" in trained["learning_rate"] and "array" in trained["temperatures"]
    assert retrained["tolerance"] == "number" and retrained["warm_start"] == "boolean"


@pytest.mark.parametrize("cron, timezone, named", [
    ("every night", "UTC", "cron"), ("0 3 * * *", "Mars/Olympus", "timezone")])
def test_a_bad_schedule_is_refused(cron, timezone, named):
    from flows.serve import deployments

    with pytest.raises(ConfigError, match=named):
        deployments({}, cron, timezone)


@pytest.mark.parametrize("command, flow", [("run", "train"), ("retrain", "retrain")])
def test_every_flag_is_a_flow_parameter_of_the_same_name(command, flow):
    import argparse
    import inspect

    from charpipe import cli
    from flows.retrain import retrain
    from flows.train import train

    [commands] = [a for a in cli._parser()._actions
                  if isinstance(a, argparse._SubParsersAction)]
    dests = {a.dest for a in commands.choices[command]._actions} - {"help", "json"}
    fn = {"train": train, "retrain": retrain}[flow].fn
    assert dests <= set(inspect.signature(fn).parameters)
