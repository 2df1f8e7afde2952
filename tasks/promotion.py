"""Prefect tasks of the retrain flow: pick warm-start weights, decide a promotion.

Neither is cached: both read the registry, which changes between runs.
"""

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from charpipe import promotion, registry
from charpipe.store import Ref


@task(name="warm-start", cache_policy=NO_CACHE)
def warm_start_from(root: str, encoded: Ref, train_params: dict) -> str | None:
    folder, why = promotion.warm_start_model(Path(root), encoded, train_params)
    logger = get_run_logger()
    if folder is None:
        logger.warning("warm start: training from scratch, because %s", why)
    else:
        logger.info("warm start: %s", why)
    return folder


@task(name="promote", cache_policy=NO_CACHE)
def promote(root: str, refs: list[Ref], tolerance: float,
            flow_run_id: str | None) -> dict:
    corpus, encoded, _, trained, converted, evaluated = refs
    entry = promotion.candidate(corpus, encoded, trained, converted, evaluated)

    def score(champion: dict):
        return promotion.score_champion(champion, encoded, entry["test_text_sha256"])

    decision = registry.consider(Path(root), entry, tolerance, score, flow_run_id)
    get_run_logger().info("promotion: %s; %s", decision["decision"], decision["reason"])
    create_markdown_artifact(key="charpipe-promotion",
                             markdown=decision_markdown(decision),
                             description="This run's model against the champion")
    create_table_artifact(key="charpipe-registry",
                          table=history_rows(registry.read(Path(root))),
                          description="Every promotion and rejection, oldest first")
    return decision


def _loss(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def _short(model: str | None) -> str:
    # The folder's stage and key name it; the root is in the registry table.
    return "none" if model is None else "/".join(Path(model).parts[-2:])


def decision_markdown(decision: dict) -> str:
    entry = decision["candidate"]
    verdict = "**promoted** to champion" if decision["decision"] == "promoted" \
        else "**rejected**; the champion stays"
    return (
        f"# Promotion decision\n\nThe model of this run was {verdict}: "
        f"{decision['reason']}.\n\n"
        f"| | test loss (nats/char) | model |\n|---|---|---|\n"
        f"| candidate | {_loss(decision['candidate_loss'])} | "
        f"`{_short(entry['model'])}` |\n"
        f"| champion | {_loss(decision['champion_loss'])} | "
        f"`{_short(decision['champion_model'])}` |\n\n"
        f"Both measured on the test part of this run's corpus (sha256 "
        f"`{entry['corpus_sha256'][:16]}…`, test text sha256 "
        f"`{entry['test_text_sha256'][:16]}…`); champion's loss: "
        f"{decision['champion_scored']}. Tolerance {decision['tolerance']:g} "
        f"nats/char. Candidate trained {entry['epochs']} "
        f"epoch{'' if entry['epochs'] == 1 else 's'}"
        f"{', warm-started' if entry.get('warm_start') else ''}.\n")


def history_rows(state: dict) -> list[dict]:
    def rounded(loss):
        return None if loss is None else round(loss, 4)

    return [{"time": d["time"], "decision": d["decision"],
             "candidate_loss": rounded(d["candidate_loss"]),
             "champion_loss": rounded(d["champion_loss"]), "tolerance": d["tolerance"],
             "corpus_sha256": d["candidate"]["corpus_sha256"][:12],
             "flow_run_id": d["flow_run_id"], "model": _short(d["candidate"]["model"])}
            for d in state["decisions"]]
