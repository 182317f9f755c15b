"""A budget schedule: one strategy up to a labelled fraction, then another.

Which criterion beats Random depends on the budget (Hacohen et al., "Active learning on
a budget", ICML 2022; the paper's own Table 5 has GCL + Coreset ahead of Random from 2 to
5 % on ACDC and level or behind from 10 %). On the cardiac phantom (docs/study.md) GCL +
Coreset leads Random at 2-5 % and trails it at 10 %, and replacing only the 10 % round's
picks by uniform ones closes that gap; a schedule makes such a switch a config entry::

    {"name": "gcl_then_random", "strategy": "schedule",
     "stages": [{"strategy": "gcl_coreset", "until": 0.05}, {"strategy": "random"}]}

Each stage's strategy sees the same :class:`SelectionContext` as when it runs alone, and
its seeds are derived from its own name, so the rounds before a switch pick exactly what
that strategy alone would pick.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError
from .base import SelectionContext, Strategy
from .registry import get_strategy, register_strategy

__all__ = ["ScheduledStrategy"]


def _stage(stage: Any, index: int) -> tuple[float | None, Strategy]:
    """(until, strategy) of one stage entry ``{"strategy": name or object, "until": f, **options}``."""
    if not isinstance(stage, Mapping):
        raise ConfigError(f"schedule.stages[{index}]: expected a dict with 'strategy' (and 'until'), got {stage!r}")
    options = dict(stage)
    strategy = options.pop("strategy", None)
    until = options.pop("until", None)
    if strategy is None:
        raise ConfigError(f"schedule.stages[{index}]: no 'strategy' in {sorted(stage)}")
    if isinstance(strategy, str):
        if strategy == "schedule":
            raise ConfigError(f"schedule.stages[{index}]: a schedule cannot be a stage of a schedule")
        strategy = get_strategy(strategy, **options)
    elif not callable(getattr(strategy, "select", None)):
        raise ConfigError(f"schedule.stages[{index}]: strategy {strategy!r} is neither a name nor has select()")
    elif options:
        raise ConfigError(f"schedule.stages[{index}]: options {sorted(options)} need a strategy name, "
                          f"not an object ({type(strategy).__name__})")
    if until is None:
        return None, strategy
    if isinstance(until, bool) or not isinstance(until, (int, float)) or not 0 < until <= 1:
        raise ConfigError(f"schedule.stages[{index}].until: expected a fraction in (0, 1], got {until!r}")
    return float(until), strategy


def _shared(strategies: Sequence[Strategy], attribute: str, default: Any) -> Any:
    """The one value of ``attribute`` among the stages that set it (``default`` if none)."""
    values = {getattr(s, attribute) for s in strategies if getattr(s, attribute, None) is not None}
    if len(values) > 1:
        raise ConfigError(f"schedule.stages: the stages ask for different {attribute}s {sorted(map(str, values))}; "
                          "a run trains and caches one per strategy")
    return values.pop() if values else default


@register_strategy("schedule")
class ScheduledStrategy(Strategy):
    """The first stage whose ``until`` covers this round's labelled fraction selects.

    A round that labels ``budget`` more slices, with ``L`` labelled of ``N`` in the pool,
    reaches the fraction ``(L + budget) / N``; stage ``i`` selects when that fraction is at
    most its ``until`` (and above every earlier stage's). The last stage may omit
    ``until`` (no limit); a round beyond every stage is a ConfigError.

    Args:
        stages: ``[{"strategy": name or strategy object, "until": fraction, **options}, ...]``
            with increasing ``until``; a named strategy is built with its ``options``.

    Raises:
        ConfigError: no stage, a malformed stage, ``until`` not increasing, or stages
            that need different encoders or embedding kinds.
    """

    def __init__(self, stages: Sequence[Mapping[str, Any]]) -> None:
        if isinstance(stages, (str, Mapping)) or not isinstance(stages, Sequence) or not stages:
            raise ConfigError(f"schedule.stages: expected a non-empty list of stages, got {stages!r}")
        parsed = [_stage(stage, i) for i, stage in enumerate(stages)]
        limits = [until for until, _ in parsed]
        if None in limits[:-1]:
            raise ConfigError(f"schedule.stages: only the last stage may omit 'until', got {limits}")
        if any(b is not None and b <= a for a, b in zip(limits, limits[1:])):
            raise ConfigError(f"schedule.stages: 'until' must increase from stage to stage, got {limits}")
        self.limits = limits
        self.stages = [strategy for _, strategy in parsed]
        self.encoder = _shared(self.stages, "encoder", None)
        self.embedding = _shared(self.stages, "embedding", "backbone")
        self.min_models = max(getattr(s, "min_models", 0) for s in self.stages)

    def stage_for(self, labelled: int, budget: int, pool: int) -> Strategy:
        """The stage that selects when ``budget`` slices join ``labelled`` of ``pool``."""
        reached = (labelled + budget) / pool
        for until, strategy in zip(self.limits, self.stages):
            # Round sizes are floors of fraction x pool: a fraction equal to `until` up to
            # rounding belongs to that stage.
            if until is None or reached <= until + 1e-9:
                return strategy
        raise ConfigError(f"schedule: a round reaching {reached:.4f} of the pool is beyond the last stage's "
                          f"until={self.limits[-1]}; end the last stage without 'until'")

    def select(self, context: SelectionContext, budget: int) -> list[str]:
        """The ids the stage of this round picks (the stage checks its own answer)."""
        stage = self.stage_for(len(context.labelled_indices), budget, len(context))
        return stage.select(context, budget)
