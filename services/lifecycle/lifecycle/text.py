"""String inputs Postgres can store: text columns and JSONB reject the NUL character, so the API does first."""

from typing import Annotated

from pydantic import Field

NO_NUL = r"^[^\x00]*$"


def text(max_length: int, min_length: int = 0, **kwargs: object) -> type[str]:
    """A `str` of bounded length without NUL characters (a 422 instead of a database error)."""
    return Annotated[str, Field(min_length=min_length, max_length=max_length, pattern=NO_NUL, **kwargs)]  # type: ignore[return-value]
