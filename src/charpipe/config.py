"""One validated configuration for a whole pipeline run.

Every knob of every stage lives in `Config`; `resolve` builds one from a preset
plus explicit overrides and refuses bad values before any work starts. Each
stage sees only its own slice (`stage_params`), so changing a sampling setting
leaves the cache keys of the training stages untouched.
"""

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from charpipe.errors import CharpipeError

DEFAULT_SOURCE = "https://homl.info/shakespeare"
DEFAULT_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
DEFAULT_ARTIFACTS = "artifacts"

# How bytes that are not UTF-8 are read: refused, or read as U+FFFD.
DECODE_ERRORS = ("strict", "replace")

# Sampling at temperature 0 takes the most likely character (greedy decoding).
GREEDY = 0.0


class ConfigError(CharpipeError, ValueError):
    """A parameter is out of range or unknown; raised before any work starts."""


@dataclass(frozen=True)
class Config:
    source: str = DEFAULT_SOURCE
    sha256: str | None = None
    source_ttl_hours: float = 24.0
    lowercase: bool = True
    decode_errors: str = "strict"
    max_chars: int | None = None
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    batch_size: int = 32
    n_steps: int = 100
    units: int = 128
    n_layers: int = 2
    dropout: float = 0.2
    recurrent_dropout: float = 0.2
    learning_rate: float = 0.001
    epochs: int = 50
    seed: int = 42
    prompt: str = "the "
    sample_length: int = 300
    temperatures: tuple[float, ...] = (0.2, 0.5, 1.0)
    artifacts: str = field(default_factory=lambda: os.environ.get(
        "CHARPIPE_ARTIFACTS", DEFAULT_ARTIFACTS))

    @property
    def root(self) -> Path:
        return Path(self.artifacts).expanduser().resolve()

    @property
    def expected_sha256(self) -> str | None:
        """The pinned hash: the one given, or the known one of the default source."""
        if self.sha256:
            return self.sha256.lower()
        return DEFAULT_SHA256 if self.source == DEFAULT_SOURCE else None


# A small configuration that still runs every stage, on a prefix of the corpus:
# about a minute on two cores, most of it TensorFlow and Prefect start-up.
PRESETS: dict[str, dict] = {
    "default": {},
    "smoke": {
        "max_chars": 120_000, "batch_size": 16, "n_steps": 50, "units": 64,
        "epochs": 2, "sample_length": 100,
    },
}

# Which fields each stage's output depends on; anything else cannot change it.
STAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "download": ("source", "sha256", "source_ttl_hours"),
    "encode": ("lowercase", "decode_errors", "max_chars", "val_fraction", "test_fraction"),
    "shard": ("batch_size", "n_steps"),
    "train": ("units", "n_layers", "dropout", "recurrent_dropout",
              "learning_rate", "epochs", "seed"),
    "convert": (),
    "evaluate": ("prompt", "sample_length", "temperatures", "seed"),
}


def stage_params(config: Config, stage: str) -> dict:
    params = {name: getattr(config, name) for name in STAGE_FIELDS[stage]}
    if stage == "download":
        params["sha256"] = config.expected_sha256
    if "temperatures" in params:
        params["temperatures"] = list(params["temperatures"])
    return params


def resolve(preset: str | None = None, **overrides) -> Config:
    """Config from a preset plus overrides; `None` overrides mean "not given"."""
    name = preset or "default"
    if name not in PRESETS:
        raise ConfigError(
            f"preset: unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown parameter(s) {unknown}; known: {sorted(known)}")

    values = dict(PRESETS[name])
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "temperatures" in values:
        values["temperatures"] = tuple(float(t) for t in values["temperatures"])
    config = Config(**values)
    validate(config)
    return config


def _positive(config: Config, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{name}: must be a positive integer, got {value!r}")


def _fraction(name: str, value, low_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (0 < value < 1 if low_open else 0 <= value < 1)
    if not ok:
        bounds = "(0, 1)" if low_open else "[0, 1)"
        raise ConfigError(f"{name}: must be a number in {bounds}, got {value!r}")


def validate(config: Config) -> None:
    """Raise ConfigError naming the first bad parameter and the accepted range."""
    _positive(config, "batch_size", "n_steps", "units", "n_layers", "epochs")
    if (isinstance(config.seed, bool) or not isinstance(config.seed, int)
            or not 0 <= config.seed < 2**32):
        raise ConfigError(f"seed: must be an integer in [0, 2**32), got {config.seed!r}")
    if config.sample_length < 0 or isinstance(config.sample_length, bool):
        raise ConfigError(
            f"sample_length: must be 0 or more, got {config.sample_length!r}")
    if config.max_chars is not None:
        _positive(config, "max_chars")
    _fraction("dropout", config.dropout)
    _fraction("recurrent_dropout", config.recurrent_dropout)
    _fraction("val_fraction", config.val_fraction, low_open=True)
    _fraction("test_fraction", config.test_fraction, low_open=True)
    if config.val_fraction + config.test_fraction >= 0.5:
        raise ConfigError(
            "val_fraction + test_fraction: must leave at least half the corpus "
            f"for training, got {config.val_fraction} + {config.test_fraction}")
    if not 0 < config.learning_rate < math.inf:
        raise ConfigError(
            f"learning_rate: must be a finite number > 0, got {config.learning_rate!r}")
    if not config.source_ttl_hours > 0:
        raise ConfigError(
            f"source_ttl_hours: must be > 0, got {config.source_ttl_hours!r}")
    if not config.temperatures:
        raise ConfigError("temperatures: give at least one temperature")
    for t in config.temperatures:
        if not (t > 0 or t == GREEDY):
            raise ConfigError(
                f"temperatures: {t!r} is not allowed; use a value > 0, "
                f"or {GREEDY} for greedy decoding")
    if config.decode_errors not in DECODE_ERRORS:
        raise ConfigError(
            f"decode_errors: must be one of {DECODE_ERRORS}, got {config.decode_errors!r}")
    if not config.prompt:
        raise ConfigError("prompt: must not be empty")
    if config.sha256 is not None and not _is_hex64(config.sha256):
        raise ConfigError(
            f"sha256: expected 64 hexadecimal characters, got {config.sha256!r}")


def _is_hex64(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text)
