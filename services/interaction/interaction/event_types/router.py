from fastapi import APIRouter, status

from shared.db import SessionDep
from shared.problems import problem_responses

from interaction.event_types import service
from interaction.event_types.schemas import EventTypeCreate, EventTypeList, EventTypeRead

router = APIRouter(prefix="/v1/event-types", tags=["event types"])


@router.post(
    "",
    response_model=EventTypeRead,
    response_model_by_alias=True,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(service.InvalidSchema, service.FixedEventType),
)
async def register_event_type(body: EventTypeCreate, session: SessionDep) -> EventTypeRead:
    """Register a custom event type, or a new version of one (old versions keep validating the events that
    name them in `dataschema`). Partners send such events like the fixed types, through POST /v1/events or Kafka."""
    return await service.register(session, body)


@router.get("", response_model=EventTypeList, response_model_by_alias=True)
async def list_event_types(session: SessionDep) -> EventTypeList:
    """Every version of every registered custom event type, by name and version."""
    return EventTypeList(items=await service.list_types(session))
