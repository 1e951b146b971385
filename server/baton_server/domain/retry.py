"""Where a retry is decided: attempts left, failure type, backoff with cap and jitter, and an
agent-supplied `retry_after`."""

from __future__ import annotations

import random
from dataclasses import dataclass

from baton_server.domain.definitions import RetryPolicy
from baton_server.domain.executions import Failure

DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_INITIAL_INTERVAL = 1.0
DEFAULT_BACKOFF_COEFFICIENT = 2.0
DEFAULT_MAXIMUM_FACTOR = 100.0


@dataclass(frozen=True)
class Backoff:
    """A step's retry policy with the server defaults filled in."""

    max_attempts: int
    initial_interval: float
    coefficient: float
    maximum_interval: float
    jitter: float
    non_retryable_types: frozenset[str]

    @classmethod
    def from_policy(cls, policy: RetryPolicy | None) -> Backoff:
        """Fills the unset fields of `policy` with defaults."""
        policy = policy or RetryPolicy()
        initial = (
            policy.initial_interval
            if policy.initial_interval is not None
            else DEFAULT_INITIAL_INTERVAL
        )
        return cls(
            max_attempts=policy.max_attempts or DEFAULT_MAX_ATTEMPTS,
            initial_interval=initial,
            coefficient=policy.backoff_coefficient or DEFAULT_BACKOFF_COEFFICIENT,
            maximum_interval=(
                policy.maximum_interval
                if policy.maximum_interval is not None
                else initial * DEFAULT_MAXIMUM_FACTOR
            ),
            jitter=policy.jitter,
            non_retryable_types=frozenset(policy.non_retryable_error_types),
        )

    def should_retry(self, failure: Failure, tries: int) -> bool:
        """True when the agent that failed `tries` times may try again."""
        if failure.non_retryable or failure.type in self.non_retryable_types:
            return False
        return tries < self.max_attempts

    def delay(
        self, tries: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds before the next attempt after `tries` failed ones: exponential, capped,
        spread by jitter, and never less than `retry_after`."""
        base = min(self.initial_interval * self.coefficient ** (tries - 1), self.maximum_interval)
        if self.jitter:
            base *= 1 + (rng or random).uniform(-self.jitter, self.jitter)
        return max(base, retry_after or 0.0, 0.0)
