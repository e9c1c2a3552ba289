import pytest

from intercloud.domain import owners
from intercloud.domain.owners import Kind, Owner


def test_both_spellings_round_trip():
    t = owners.target(12)
    assert str(t) == "t:12" and t.key == "t12"
    assert Owner.parse("t:12") == t == Owner.parse("t12")
    assert Owner.parse("e3") == owners.expansion(3) and owners.expansion(3).key == "e3"
    assert Owner.parse("a:7").kind is Kind.ADJACENCY and Owner.parse("r:7") == owners.replica(7)


@pytest.mark.parametrize("text", ["", "t", "t:", "x:1", "t:1x", "t: 1", "t:+1", "t:١", "e-1"])
def test_anything_else_is_refused(text):
    with pytest.raises(ValueError, match="not an owner"):
        Owner.parse(text)
