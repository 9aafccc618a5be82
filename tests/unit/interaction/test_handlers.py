"""The ingestion registry: every partner event type of the contract has exactly one handler."""

import pytest

from shared.contracts.partner import PARTNER_EVENT_TYPES

from interaction.ingestion import handlers


@pytest.mark.parametrize("event_type", sorted(PARTNER_EVENT_TYPES))
def test_every_contract_type_has_a_handler(event_type):
    model = PARTNER_EVENT_TYPES[event_type]
    assert model in handlers.HANDLERS, f"{event_type} has no handler in interaction/ingestion/handlers.py"


def test_a_type_without_a_handler_is_an_error_not_a_silent_timeline_entry():
    class Unhandled(PARTNER_EVENT_TYPES["lead.captured"]):
        EVENT_TYPE = "lead.unhandled"

    with pytest.raises(LookupError, match="no ingestion handler for Unhandled"):
        handlers.handler_for(Unhandled())
