"""``ConsentHistory.states_in_force`` gives exactly the two lookups it replaces."""

from __future__ import annotations

import random
from typing import Any

from consentinel.streams.events.records import ConsentAction


def test_the_pair_equals_the_two_lookups_on_random_histories(make: Any) -> None:
    rng = random.Random(11)
    day, t0 = make.DAY, make.T0
    for round_ in range(60):
        events = []
        for _ in range(rng.randrange(1, 12)):
            action = rng.choice([ConsentAction.GRANT, ConsentAction.WITHDRAW, ConsentAction.REFUSE])
            events.append(make.consent(action, at=t0 + rng.randrange(0, 20) * day // 2))
        history = make.history(*events, max_versions=rng.choice([2, 3, 64]))
        for _ in range(25):
            t = t0 + rng.randrange(-2, 24) * day // 2 + rng.randrange(0, 3)
            allowance = rng.choice([0, day, 3 * day, 10 * day])
            own, effective = history.states_in_force("Le Quotidien", t, allowance)
            assert own == history.state_at("Le Quotidien", t), (round_, t)
            want = history.state_at("Le Quotidien", t, allowance_ms=allowance)
            assert effective == want, (round_, t, allowance)
    assert history.states_in_force("Nobody", t0, day)[0].status == "unknown"


def test_one_state_is_built_when_nothing_happened_within_the_allowance(make: Any) -> None:
    history = make.history(make.grant(at=make.T0), make.withdraw(at=make.T0 + 10 * make.DAY))
    own, effective = history.states_in_force("Le Quotidien", make.T0 + 5 * make.DAY, make.DAY)
    assert own is effective
    # a withdrawal one day before the use, within a three-day allowance: not yet in effect
    own, effective = history.states_in_force("Le Quotidien", make.T0 + 11 * make.DAY, 3 * make.DAY)
    assert own is not effective
    assert str(own.status) == "withdrawn" and str(effective.status) == "given"
