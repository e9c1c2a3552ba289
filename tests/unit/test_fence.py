"""The fence's pure parts (store/fence.py): when a gateway's write is refused and what it says;
the token the agent hands it (agent.held_token). The database side is in
tests/integration/test_gateway_fence.py."""

from __future__ import annotations

from types import SimpleNamespace

from intercloud.agent import held_token
from intercloud.errors import Fenced, IntercloudError
from intercloud.store import Store
from intercloud.store import models as m
from intercloud.store.fence import refusal, writes


def test_a_write_commits_only_with_the_rows_holder_and_token():
    assert refusal("A", "gw1", 3, "gw1", 3) is None
    assert refusal("A", "gw1", 3, "gw2", 4) == (
        "gateway gw1 is no longer the active gateway of A (lease token 3, held: gw2 token 4); "
        "write refused"
    )
    # the same name with another token: an earlier term of ours, not this one
    assert refusal("A", "gw1", 3, "gw1", 4) is not None
    assert refusal("A", "gw1", 3, None, 3) == (
        "gateway gw1 is no longer the active gateway of A (lease token 3, held: nobody "
        "token 3); write refused"
    )
    assert refusal("A", "gw1", 3, None, None) == (
        "gateway gw1 is no longer the active gateway of A (lease token 3, no lease row); "
        "write refused"
    )


def test_a_standby_is_refused_whatever_the_row_says():
    assert refusal("A", "gw1", None, "gw1", 3) == (
        "gateway gw1 is not the active gateway of A (standby, held: gw1 token 3); write refused"
    )


def test_fenced_is_a_503_standby_error_naming_the_active():
    exc = Fenced("refused", active="gw2")
    assert isinstance(exc, IntercloudError)
    assert (exc.status_code, exc.code, exc.active) == (503, "standby", "gw2")


def test_the_agents_token_is_none_unless_active():
    leadership = SimpleNamespace(token=7, active=True)
    role = SimpleNamespace(leadership=leadership, active=lambda: leadership.active)
    token = held_token(role)  # type: ignore[arg-type]
    assert token() == 7
    leadership.active = False  # stepped down; the token is still known
    assert token() is None


def test_what_counts_as_a_write(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    store.migrate()
    try:
        with store.session() as s:
            assert not writes(s, False)
            s.add(m.VniAllocation(vni=1, owner="x"))
            assert writes(s, False)  # pending, flushed by the commit
        with store.session() as s:
            row = s.get(m.VniAllocation, 1)
            assert row is not None
            row.owner = "x"  # the same value: no change
            assert not writes(s, False)
            row.owner = "y"
            assert writes(s, False)
            s.flush()
            assert not writes(s, False) and writes(s, True)  # the Store's flag says it flushed
    finally:
        store.dispose()
