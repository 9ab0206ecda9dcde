"""Every command kind has its model, its topic, and a handler in the agent (which the simulated fleet runs
unchanged), so no kind can be sent that nothing answers."""

from __future__ import annotations

import typing

from receivers.agent.agent import HANDLERS
from receivers.protocol import COMMAND_KINDS, Topics
from receivers.protocol.messages import AnyCommandT


def test_kinds_models_topics_and_handlers_agree() -> None:
    models = {typing.get_args(m.model_fields["kind"].annotation)[0] for m in typing.get_args(AnyCommandT)}
    assert models == set(COMMAND_KINDS) == set(HANDLERS)
    for kind in COMMAND_KINDS:
        info = Topics().parse(Topics().receiver_cmd("r1", kind))
        assert info is not None and info.command == kind
