import uuid

from fastapi import APIRouter

from shared.db import SessionDep
from shared.problems import NotFound, problem_responses

from interaction.customers import service
from interaction.customers.schemas import CustomerProfileRead

router = APIRouter(prefix="/v1/customers", tags=["customers"])


@router.get("/{customer_id}", response_model=CustomerProfileRead, responses=problem_responses(NotFound))
async def get_customer(customer_id: uuid.UUID, session: SessionDep) -> CustomerProfileRead:
    """A customer's profile: identifiers and purchase totals."""
    return await service.get_profile(session, customer_id)
