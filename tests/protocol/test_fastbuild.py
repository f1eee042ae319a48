"""The generated fast builders accept exactly what the generic validator accepts, and agree."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import messages
from protocol._fastbuild import Slow, builder
from protocol.errors import ProtocolError
from protocol.messages import MESSAGES, Message
from tests.protocol.strategies import envelopes, messages_of


def _generic(cls: type[Message], params: Any) -> Any:
    try:
        return messages._build(cls, params)
    except messages._Invalid:
        return "invalid"


@pytest.mark.parametrize("cls", list(MESSAGES.values()), ids=list(MESSAGES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_fast_builder_matches_generic_on_valid_messages(cls: type[Message], data: st.DataObject):
    """For every message class, a valid message's params build the same object both ways."""
    msg = data.draw(messages_of(cls))
    params = msg.to_params()
    assert builder(cls)(params) == _generic(cls, params) == msg


@settings(max_examples=400, deadline=None)
@given(envelope=envelopes())
def test_fast_builder_never_accepts_what_generic_refuses(envelope: dict[str, Any]):
    """On arbitrary params, the fast builder either agrees with the generic one or steps aside."""
    cls = MESSAGES.get(envelope["call"]) if isinstance(envelope.get("call"), str) else None
    if cls is None:
        return
    params = envelope.get("params")
    try:
        fast = builder(cls)(params)
    except Slow:
        return
    assert fast == _generic(cls, params)
    assert not isinstance(fast, ProtocolError)
