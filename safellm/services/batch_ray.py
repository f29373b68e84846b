"""The Ray engine of `safellm batch`: Ray Data's `map_batches` over the job's unit ids with a pool
of actors, each holding one `ExplanationService` (risk model, embedder and LLM client loaded
once per actor), on the cluster at `job.address` / `RAY_ADDRESS` (a local one started here when
neither is given). The driver writes each finished batch as a part, as the local engine does,
so an interrupted Ray run resumes the same way.

Ray is optional (`pip install "ray[data]"`); the rows are those of `batch.explain_rows`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safellm.errors import ConfigError
from safellm.progress import Advance

if TYPE_CHECKING:
    import pandas as pd

    from safellm.config import Settings
    from safellm.services.batch_rows import BatchJob


class UnitExplainer:
    """One Ray actor: loads the service once, then explains batches of unit ids."""

    def __init__(self, settings: Settings, task: str, model: str | None, question: str | None):
        from safellm.services.explanation import ExplanationService

        self.service = ExplanationService(settings)
        self.task, self.model, self.question = task, model, question
        frame = self.service.task_data(task).frame
        self.rows = frame.set_index("unit_id", drop=False)
        self.service.explainer(task)  # loaded now, not in the first batch
        self.service.guard  # noqa: B018

    def __call__(self, batch: pd.DataFrame) -> Any:
        from safellm.services.batch_rows import explain_rows, to_table

        rows = self.rows.loc[[int(u) for u in batch["unit_id"]]]
        records = explain_rows(
            self.service,
            self.task,
            rows,
            model=self.model,
            question=self.question,
            run_id=f"ray-{os.getpid()}",
        )
        return to_table(records)


def run_on_ray(
    settings: Settings,
    job: BatchJob,
    todo: pd.DataFrame,
    *,
    advance: Advance,
    on_part: Callable[[Path], None] | None = None,
) -> int:
    """Explain the units of `todo` on Ray; the number of rows written."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ConfigError(
            'the ray engine needs Ray Data: pip install "ray[data]" (or use --engine local)'
        ) from exc
    from safellm.services.batch_rows import write_part

    if todo.empty:
        return 0
    address = job.address or os.environ.get("RAY_ADDRESS")
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"no Ray cluster at {address or 'a new local one'}: {exc}") from exc
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ids = [{"unit_id": int(u)} for u in todo["unit_id"]]
        # a block per chunk: one block would reach one actor only
        ds = ray.data.from_items(ids, override_num_blocks=-(-len(ids) // job.chunk))
        out = ds.map_batches(
            UnitExplainer,
            fn_constructor_kwargs={
                "settings": settings,
                "task": job.task,
                "model": job.model,
                "question": job.question,
            },
            batch_size=job.chunk,
            batch_format="pandas",
            compute=ray.data.ActorPoolStrategy(size=job.workers),
            num_cpus=1,
        )
        written = 0
        batch: Any
        for batch in out.iter_batches(batch_size=None, batch_format="pyarrow"):
            if batch.num_rows == 0:
                continue
            path = write_part(job.out, batch.to_pylist())
            written += batch.num_rows
            advance(batch.num_rows, f"unit {batch['unit_id'][batch.num_rows - 1]}")
            if on_part is not None:
                on_part(path)
        return written
    finally:
        if started_here:
            ray.shutdown()
