"""`charpipe run`, `retrain`, `serve` and `generate`.

Parameters are checked before Prefect or TensorFlow is imported, so a typo
costs milliseconds and touches nothing on disk.
"""

import argparse
import json
import os
import sys
from pathlib import Path

from charpipe import corpus
from charpipe.config import GREEDY, PRESETS, ConfigError, resolve
from charpipe.errors import CharpipeError

# Flags of `run`: (flag, type, help). Each maps to the Config field of the same
# name with dashes as underscores, and to the `train` flow's parameter.
RUN_FLAGS = [
    ("--source", str, "URL, file:// URL or path of the corpus"),
    ("--sha256", str, "expected sha256 of the corpus; a mismatch stops the run"),
    ("--artifacts", str, "artifact root (default: $CHARPIPE_ARTIFACTS or ./artifacts)"),
    ("--decode-errors", str, "'strict' refuses bytes that are not UTF-8 (default); "
     "'replace' reads them as U+FFFD"),
    ("--max-chars", int, "use only the first N characters of the corpus"),
    ("--val-fraction", float, "share of the text held out for validation"),
    ("--test-fraction", float, "share of the text held out for the final test"),
    ("--batch-size", int, "streams per batch (default 32)"),
    ("--n-steps", int, "characters per training window (default 100)"),
    ("--units", int, "GRU units per layer (default 128)"),
    ("--n-layers", int, "number of GRU layers (default 2)"),
    ("--dropout", float, "input dropout of each GRU, in [0, 1) (default 0.2)"),
    ("--recurrent-dropout", float, "recurrent dropout, in [0, 1) (default 0.2)"),
    ("--learning-rate", float, "Adam learning rate (default 0.001)"),
    ("--epochs", int, "training epochs (default 50)"),
    ("--seed", int, "random seed for weights, dropout and sampling (default 42)"),
    ("--prompt", str, "text the samples start from (default 'the ')"),
    ("--sample-length", int, "characters per sample (default 300)"),
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="charpipe", description="Train, convert and sample a stateful char-RNN.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the train flow (embedded Prefect)")
    _add_run_flags(run)
    retrain = commands.add_parser(
        "retrain", help="run the retrain flow: train, then promote only a better model")
    _add_run_flags(retrain)
    retrain.add_argument("--tolerance", type=float, default=0.0,
                         help="promote only if the test loss is lower by more than "
                              "this (nats/char, default 0)")
    retrain.add_argument("--warm-start", action="store_true",
                         help="start from the champion's weights if they fit")
    retrain.add_argument("--warm-epochs", type=int,
                         help="epochs of a warm start (default: a quarter of --epochs)")

    serve = commands.add_parser(
        "serve", help="serve the train and retrain deployments from this process")
    serve.add_argument("--preset", choices=sorted(PRESETS))
    serve.add_argument("--source", help="corpus of both deployments' runs")
    serve.add_argument("--artifacts", help="artifact root of both deployments' runs")
    serve.add_argument("--cron", default="0 3 * * *",
                       help="retrain schedule (default '0 3 * * *': nightly)")
    serve.add_argument("--timezone", default="UTC", help="of --cron (default UTC)")

    gen = commands.add_parser("generate", help="write text with a trained model")
    gen.add_argument("--model",
                     help="a model folder written by the convert stage (default: "
                          "the champion in the registry under --artifacts)")
    gen.add_argument("--artifacts", help="artifact root whose champion to use "
                     "(default: $CHARPIPE_ARTIFACTS or ./artifacts)")
    gen.add_argument("--prompt", default="the ",
                     help="text to continue (default 'the '); lower-cased for a "
                     "model trained on lower-cased text")
    gen.add_argument("--length", type=int, default=300,
                     help="characters to write after the prompt (default 300)")
    gen.add_argument("--temperature", type=float, default=0.5,
                     help=f"> 0, or {GREEDY} for the most likely character")
    gen.add_argument("--seed", type=int, default=None,
                     help="random seed; the same seed gives the same text "
                     "(default: a different text each time)")
    gen.add_argument("--drop-unknown", action="store_true",
                     help="leave out prompt characters the model does not know "
                     "(default: refuse them)")
    return parser


def _add_run_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="'smoke': a small configuration for a one-minute check")
    for flag, type_, help_ in RUN_FLAGS:
        parser.add_argument(flag, type=type_, help=help_)
    parser.add_argument("--temperatures", type=float, nargs="+",
                        help=f"sampling temperatures (default 0.2 0.5 1.0; "
                             f"{GREEDY} = greedy)")
    parser.add_argument("--no-lowercase", dest="lowercase", action="store_false",
                        default=None, help="keep the corpus's case")
    parser.add_argument("--json", action="store_true",
                        help="print the result as one JSON object on the last line")


def _run(args) -> int:
    overrides = {name: value for name, value in vars(args).items()
                 if name not in ("command", "preset", "json")}
    config = resolve(args.preset, **overrides)  # refused before importing Prefect
    corpus.require(config.source)  # a local file that is not there, likewise
    _prepare_embedded_prefect()

    from flows.train import train

    result = train(preset=args.preset, **overrides)
    _print_summary(result)
    if args.json:
        print(json.dumps(result), flush=True)
    return 0


def _prepare_embedded_prefect() -> None:
    """Bring the embedded server's database up to date once, under a lock.

    Without PREFECT_API_URL every run starts its own embedded Prefect server,
    which migrates the SQLite database in PREFECT_HOME as it starts; two runs
    starting together on a new PREFECT_HOME (or after a Prefect upgrade) would
    both migrate it and one fails ("duplicate column name"). A marker per
    Prefect version makes later runs skip this.
    """
    import asyncio
    import fcntl
    from importlib.metadata import version

    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url:
        return
    home = Path(settings.home)
    marker = home / f".charpipe-database-{version('prefect')}"
    if marker.exists():
        return
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".charpipe-database.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            from prefect.server.database import provide_database_interface

            asyncio.run(provide_database_interface().create_db())
            marker.touch()


def _print_summary(result: dict) -> None:
    hits = sum(result["cached"].values())
    print(f"\nval_loss {result['val_loss']:.4f} nats/char, "
          f"{result['bits_per_char']:.3f} bits/char; "
          f"{hits}/{len(result['cached'])} stages cached", flush=True)
    for sample in result["samples"]:
        print(f"--- temperature {sample['temperature']}\n"
              f"{sample['prompt']}{sample['text']}", flush=True)
    print(f"--- model: {result['model']}", flush=True)


def _generate(args) -> int:
    if args.model is None:
        args.model = str(_champion_folder(args.artifacts))
        print(f"charpipe: generating with the champion, {args.model}", file=sys.stderr)
    if args.length < 0:
        raise ConfigError(f"length: must be 0 or more, got {args.length}")
    if args.seed is not None and not 0 <= args.seed < 2**32:
        raise ConfigError(f"seed: must be an integer in [0, 2**32), got {args.seed}")
    if not (args.temperature > 0 or args.temperature == GREEDY):
        raise ConfigError(f"temperature: must be > 0, or {GREEDY} for greedy "
                          f"decoding, got {args.temperature}")
    from charpipe import model, sampling

    net, vocab = model.load_folder(args.model)
    prompt = sampling.usable_prompt(args.prompt, vocab, args.drop_unknown)
    read = sampling.reading(args.prompt, vocab)
    if prompt != read:
        print(f"charpipe: left out prompt characters outside the vocabulary: "
              f"{sorted(set(read) - set(vocab))!r}", file=sys.stderr)
    [text] = sampling.complete(net, vocab, prompt, args.length, args.temperature,
                               args.seed)
    print(prompt + text)
    return 0


def _champion_folder(artifacts: str | None) -> Path:
    from charpipe import registry

    root = resolve(artifacts=artifacts).root
    champion = registry.champion(root)
    if champion is None:
        raise ConfigError(
            f"model: there is no champion in {root / registry.REGISTRY_DIR} yet; "
            "run `charpipe retrain` to make one, or pass --model")
    return Path(champion["model"])


def _retrain(args) -> int:
    from charpipe.promotion import check_options

    extra = ("tolerance", "warm_start", "warm_epochs")
    overrides = {name: value for name, value in vars(args).items()
                 if name not in ("command", "preset", "json") + extra}
    config = resolve(args.preset, **overrides)
    check_options(args.tolerance, args.warm_epochs)
    corpus.require(config.source)
    _prepare_embedded_prefect()

    from flows.retrain import retrain

    result = retrain(preset=args.preset, **overrides,
                     **{name: getattr(args, name) for name in extra})
    _print_summary(result)
    decision = result["decision"]
    print(f"--- {decision['decision']}: {decision['reason']}", flush=True)
    if args.json:
        print(json.dumps(result), flush=True)
    return 0


def _serve(args) -> int:
    names = ("preset", "source", "artifacts")
    parameters = {name: getattr(args, name) for name in names
                  if getattr(args, name) is not None}
    config = resolve(**parameters)
    # Served runs start in a scratch folder: relative paths must be made absolute.
    parameters["artifacts"] = str(config.root)
    if args.source and "://" not in args.source:
        parameters["source"] = str(Path(args.source).expanduser().resolve())

    from flows.serve import serve

    serve(parameters, args.cron, args.timezone)
    return 0


COMMANDS = {"run": _run, "retrain": _retrain, "serve": _serve}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The embedded server's usage heartbeat would call out to Prefect's hosts
    # (and races its own SQLite migration on a first start): off unless asked.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    args = _parser().parse_args(argv)
    try:
        return COMMANDS.get(args.command, _generate)(args)
    except ConfigError as exc:
        print(f"charpipe: error: {exc}", file=sys.stderr)
        return 2
    except CharpipeError as exc:
        print(f"charpipe: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("charpipe: interrupted. Finished stages and the last completed "
              "training epoch are kept; run the same command again to go on from "
              "there.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
