"""Which copy of the chat model a request goes to (no model: the choice alone)."""

from __future__ import annotations

import pytest

from voice.llm_router import EndpointRouter, shared_lead

CARD = {"role": "system", "content": "You are Mara."}
OTHER_CARD = {"role": "system", "content": "You are Tom."}


def turns(*words: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": w} for w in words]


async def test_a_request_goes_to_the_least_busy_copy() -> None:
    router = EndpointRouter(["http://a/v1", "http://b/v1", "http://c/v1"], "none")
    try:
        with router.lease([CARD, *turns("hi")]) as first:
            with router.lease([CARD, *turns("hi")]) as second:
                with router.lease([CARD]) as third:
                    assert len({first.base_url, second.base_url, third.base_url}) == 3
                    assert [e.in_flight for e in router.endpoints] == [1, 1, 1]
        assert [e.in_flight for e in router.endpoints] == [0, 0, 0]
    finally:
        await router.aclose()


async def test_between_idle_copies_the_one_with_the_conversation_in_its_cache_wins() -> None:
    router = EndpointRouter(["http://a/v1", "http://b/v1"], "none")
    try:
        with router.lease([CARD, *turns("hi")]), router.lease([OTHER_CARD, *turns("yo")]):
            pass  # one call's prompt is on each copy now
        with router.lease([OTHER_CARD, *turns("yo", "and then?")]) as endpoint:
            assert endpoint.base_url == "http://b/v1"
        with router.lease([CARD, *turns("hi", "tell me more")]) as endpoint:
            assert endpoint.base_url == "http://a/v1"
        assert [e["served"] for e in router.status()] == [2, 2]
    finally:
        await router.aclose()


async def test_a_request_that_fails_gives_its_copy_back() -> None:
    router = EndpointRouter(["http://a/v1", "http://b/v1"], "none")
    try:
        with pytest.raises(RuntimeError), router.lease(turns("hi")):
            raise RuntimeError("the request failed")
        assert [e.in_flight for e in router.endpoints] == [0, 0]
    finally:
        await router.aclose()


async def test_a_warm_up_names_its_copy() -> None:
    router = EndpointRouter(["http://a/v1", "http://b/v1"], "none")
    try:
        with router.lease(turns("hi"), "http://b/v1") as endpoint:
            assert endpoint.base_url == "http://b/v1"
    finally:
        await router.aclose()


def test_shared_lead_counts_leading_equal_messages() -> None:
    assert shared_lead([CARD, *turns("a", "b")], [CARD, *turns("a", "c")]) == 2
    assert shared_lead([CARD], [OTHER_CARD]) == 0
    assert shared_lead([], [CARD]) == 0


def test_a_router_needs_an_endpoint() -> None:
    with pytest.raises(ValueError):
        EndpointRouter([], "none")
