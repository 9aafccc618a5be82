"""Concurrent event posts of one caller go to the interaction service as one request.

A partner that sends one event per request pays two HTTP hops per event; the interaction service's own share
of a single-event request (HTTP, middleware, token, response) is several times its share of an event in a
batch. So the gateway groups the `POST /v1/events` of one caller (`shared/group_commit.Grouped`): posts that
arrive while two of the caller's batches are on their way (or within `GATEWAY_EVENT_POSTS_GROUP_WAIT_S`, 0 by
default: a lone post goes at once) are sent as the next batch, and each client gets the answer for its own
events, after the interaction service stored them — what it would have got on its own:

- The batch is the posts' own bytes, joined (`[` a `,` b `]`): what the gateway checked is what is forwarded.
  Only a post that is a non-empty JSON array joins a group; anything else is forwarded alone and answered by
  the service as before.
- One caller per group (its key, role and partner): the service acts for exactly the caller that sent each
  event. At most 1,000 events and 5,000,000 bytes per group: the service's default limits.
- The service's per-item answer (200, or 422 when some items were rejected) is cut per post: the post's
  items, its indexes, its counts, and a 422 problem with its own first rejection when it has one.
- A 503 (the database could not take the batch: nothing was stored) is every post's answer, as is a failure
  to reach the service. Any other answer (a limit the service was configured below the defaults, a 500)
  cannot be cut: each post of the group is then sent alone, so it gets exactly its own answer.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from shared.group_commit import Grouped
from shared.internal_auth import Caller
from shared.log import correlation_id
from shared.problems import problem_response

from gateway.upstream import UpstreamResponse, Upstreams, UpstreamUnavailable

PATH = "/v1/events"
SERVICE = "interaction"
# The interaction service's default limits per request (INTERACTION_INGEST_MAX_EVENTS / _MAX_BYTES): a group
# stays within both. A post counts as its events or as its bytes in 5,000-byte units, whichever is more.
MAX_EVENTS = 1000
MAX_BYTES = 5_000_000
_BYTES_PER_UNIT = MAX_BYTES // MAX_EVENTS
_JSON = [(b"content-type", b"application/json")]
# Groups of one caller on their way at once: the interaction service validates the next while it stores one.
IN_FLIGHT = 2


@dataclass(frozen=True, slots=True)
class EventPost:
    """One client's post: its body (a JSON array), how many events it holds, its headers to forward alone,
    its correlation id (a group is sent with its first post's)."""

    body: bytes
    events: int
    headers: dict[str, str]
    correlation_id: str | None


class _Uncut(Exception):
    """The service's answer to a group is not a per-item answer: each post is sent alone."""


class EventPosts:
    def __init__(self, upstreams: Upstreams, *, max_wait_s: float) -> None:
        self._upstreams = upstreams
        self._max_wait_s = max_wait_s
        self._groups: dict[Caller, Grouped[EventPost, UpstreamResponse]] = {}

    @property
    def largest(self) -> int:
        """The most posts sent together so far (for the metrics and the tests)."""
        return max((g.largest for g in self._groups.values()), default=0)

    @property
    def callers(self) -> list[Caller]:
        return list(self._groups)

    async def send(self, caller: Caller, post: EventPost) -> UpstreamResponse:
        group = self._groups.get(caller)
        if group is None:
            if len(self._groups) > 1000:  # keys come and go: drop the idle groups rather than keep one per key
                self._groups = {c: g for c, g in self._groups.items() if not g.idle}
            group = self._groups[caller] = Grouped(
                lambda posts: self._send_group(caller, posts),
                is_transient=lambda exc: isinstance(exc, UpstreamUnavailable),
                max_wait_s=self._max_wait_s,
                max_size=MAX_EVENTS,
                in_flight=IN_FLIGHT,
                name="gateway-event-posts",
            )
        return await group.submit(post, size=max(post.events, math.ceil(len(post.body) / _BYTES_PER_UNIT)))

    async def _send_group(self, caller: Caller, posts: list[EventPost]) -> Sequence[UpstreamResponse]:
        # The group is sent from the flusher task, which may have been started by an earlier request.
        token = correlation_id.set(posts[0].correlation_id)
        try:
            if len(posts) == 1:  # as it came: its own headers, the service's answer unchanged
                post = posts[0]
                return [await self._upstreams.request(SERVICE, "POST", PATH, caller=caller, body=post.body, headers=post.headers)]
            joined = b"[" + b",".join(p.body.strip()[1:-1] for p in posts) + b"]"
            resp = await self._upstreams.request(
                SERVICE, "POST", PATH, caller=caller, body=joined, headers={"content-type": "application/json"}
            )
        finally:
            correlation_id.reset(token)
        if resp.status == 503:
            return [resp] * len(posts)
        return cut(resp, [p.events for p in posts])


def cut(resp: UpstreamResponse, sizes: list[int]) -> list[UpstreamResponse]:
    """The service's per-item answer to a joined batch, as the answers to the posts it was joined from."""
    if resp.status not in (200, 422):
        raise _Uncut(f"the interaction service answered {resp.status}")
    answer = orjson.loads(resp.body)
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list) or len(results) != sum(sizes):
        raise _Uncut("the interaction service's answer does not list every event")
    out, start = [], 0
    for size in sizes:
        own = [{**r, "index": r["index"] - start} for r in results[start : start + size]]
        start += size
        counts = {s: sum(r["status"] == s for r in own) for s in ("accepted", "duplicate", "rejected")}
        members = {"accepted": counts["accepted"], "duplicates": counts["duplicate"], "rejected": counts["rejected"]}
        if not counts["rejected"]:
            out.append(UpstreamResponse(200, _JSON, orjson.dumps({**members, "results": own})))
            continue
        # The service's own problem for a batch with rejections (interaction/ingestion/router.py), for this post.
        first = next(r for r in own if r["status"] == "rejected")
        problem = problem_response(
            422,
            answer["title"],
            f"{counts['rejected']} of {size} rejected; first: item {first['index']}: {first['reason']}",
            slug=answer["type"].rsplit("/", 1)[-1],
            instance=PATH,
            **members,
            results=own,
        )
        out.append(UpstreamResponse(422, [(b"content-type", problem.media_type.encode())], bytes(problem.body)))
    return out
