import subprocess
import sys
from pathlib import Path

import pytest

from charpipe import cli
from charpipe.config import DEFAULT_SHA256, ConfigError, resolve, stage_params


def test_defaults_are_the_books_hyperparameters():
    config = resolve()
    assert (config.batch_size, config.n_steps, config.units, config.n_layers) == (
        32, 100, 128, 2)
    assert (config.dropout, config.recurrent_dropout, config.epochs) == (0.2, 0.2, 50)
    assert config.expected_sha256 == DEFAULT_SHA256


def test_a_preset_is_overridden_by_explicit_values():
    config = resolve("smoke", epochs=5)
    assert config.epochs == 5 and config.max_chars == 120_000


def test_a_local_source_has_no_pinned_hash_unless_given():
    assert resolve(source="x.txt").expected_sha256 is None
    assert resolve(source="x.txt", sha256="A" * 64).expected_sha256 == "a" * 64


@pytest.mark.parametrize("overrides, named", [
    ({"batch_size": 0}, "batch_size"),
    ({"n_steps": -3}, "n_steps"),
    ({"units": 0}, "units"),
    ({"epochs": 0}, "epochs"),
    ({"dropout": 1.0}, "dropout"),
    ({"recurrent_dropout": -0.1}, "recurrent_dropout"),
    ({"temperatures": [0.5, -1.0]}, "temperatures"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"max_chars": 0}, "max_chars"),
    ({"val_fraction": 0.3, "test_fraction": 0.3}, "val_fraction"),
    ({"sha256": "abc"}, "sha256"),
    ({"prompt": ""}, "prompt"),
    ({"seed": -1}, "seed"),
    ({"seed": 2**32}, "seed"),
    ({"learning_rate": float("inf")}, "learning_rate"),
    ({"decode_errors": "ignore"}, "decode_errors"),
])
def test_bad_parameters_are_named(overrides, named):
    with pytest.raises(ConfigError, match=f"^{named}"):
        resolve(**overrides)


def test_greedy_temperature_is_allowed():
    assert resolve(temperatures=[0.0, 1.0]).temperatures == (0.0, 1.0)


def test_unknown_preset_and_parameter():
    with pytest.raises(ConfigError, match="preset"):
        resolve("huge")
    with pytest.raises(ConfigError, match="unknown parameter"):
        resolve(epoch=3)


def test_only_evaluate_sees_the_temperatures():
    config = resolve(temperatures=[0.7])
    seen = [s for s in ("download", "encode", "shard", "train", "convert", "evaluate")
            if "temperatures" in stage_params(config, s)]
    assert seen == ["evaluate"]


def test_cli_refuses_bad_parameters_before_any_work(tmp_path):
    # In a fresh interpreter, so that what the refusal imported shows.
    root = tmp_path / "art"
    script = (f"import sys; from charpipe import cli; "
              f"code = cli.main(['run', '--epochs', '0', '--artifacts', {str(root)!r}]); "
              "print(code, 'prefect' in sys.modules, 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.split() == ["2", "False", "False"]
    assert "epochs: must be a positive integer" in out.stderr
    assert not root.exists()


def test_cli_entry_point_is_installed():
    script = Path(sys.executable).parent / "charpipe"
    out = subprocess.run([str(script), "run", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "--n-steps" in out.stdout and "--preset" in out.stdout


def test_every_run_flag_is_a_parameter_of_both_flows():
    import inspect

    from charpipe.cli import RUN_FLAGS
    from flows.retrain import retrain
    from flows.train import train

    names = {flag[2:].replace("-", "_") for flag, _, _ in RUN_FLAGS}
    names |= {"preset", "temperatures", "lowercase"}
    for flow in (train, retrain):
        assert names <= set(inspect.signature(flow.fn).parameters), flow.name
