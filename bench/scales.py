"""How much data each benchmark scale holds, and how long each phase may run."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True, slots=True)
class Scale:
    name: str
    users: int
    tasks_per_user: float
    seconds_per_phase: float
    rounds: int
    producer_repetitions: int

    @property
    def database(self) -> str:
        return f"tt_bench_{self.name}"


SCALES = {
    scale.name: scale
    for scale in (
        # CI's smoke run: every phase, every check, a few seconds of data and timing.
        Scale(
            "tiny",
            users=2_000,
            tasks_per_user=10,
            seconds_per_phase=1.5,
            rounds=1,
            producer_repetitions=5,
        ),
        Scale(
            "small",
            users=50_000,
            tasks_per_user=10,
            seconds_per_phase=12,
            rounds=3,
            producer_repetitions=15,
        ),
        Scale(
            "medium",
            users=200_000,
            tasks_per_user=10,
            seconds_per_phase=12,
            rounds=3,
            producer_repetitions=15,
        ),
        Scale(
            "large",
            users=1_000_000,
            tasks_per_user=10,
            seconds_per_phase=12,
            rounds=3,
            producer_repetitions=9,
        ),
    )
}

# The generation's "now" is pinned, so the same seed gives the same rows on any day and the
# window below always holds the same completions.
DATA_NOW = datetime(2026, 12, 4, tzinfo=UTC)
DEFAULT_SEED = 0.42
HISTORY_DAYS = 60
WINDOW_LENGTH = timedelta(hours=24)
BATCH_SIZE = 1000
MAX_TASKS = 5
