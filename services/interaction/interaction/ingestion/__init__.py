"""Partner event ingestion: two doors (the `partner.events` topic and `POST /v1/events`), one contract."""
