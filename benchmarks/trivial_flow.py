"""The floor for orchestration: a one-task Prefect flow, started like `charpipe run`."""

from prefect import flow, task


@task
def one() -> int:
    return 1


@flow(name="trivial")
def trivial() -> int:
    return one()


if __name__ == "__main__":
    trivial()
