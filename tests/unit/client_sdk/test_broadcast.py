"""Subscriptions get what is published from their creation on, end with their broadcast or when
closed, and are forgotten once closed."""

from __future__ import annotations

import asyncio

from client_sdk._broadcast import Broadcast, Subscription


async def drain(subscription: Subscription[int]) -> list[int]:
    async with asyncio.timeout(5):
        return [item async for item in subscription]


async def test_a_subscription_gets_what_was_published_before_its_first_read():
    broadcast: Broadcast[int] = Broadcast()
    broadcast.publish(0)  # before: not seen
    subscription = Subscription(broadcast)
    broadcast.publish(1)
    broadcast.publish(2)
    broadcast.end()
    assert await drain(subscription) == [1, 2]
    assert await drain(subscription) == []  # and it stays ended


async def test_a_subscription_made_after_the_end_ends_at_once():
    broadcast: Broadcast[int] = Broadcast()
    broadcast.end()
    assert await drain(Subscription(broadcast)) == []


async def test_closing_ends_after_what_it_holds_and_stops_delivery():
    broadcast: Broadcast[int] = Broadcast()
    subscription = Subscription(broadcast)
    other = Subscription(broadcast)
    broadcast.publish(1)
    subscription.close()
    broadcast.publish(2)
    assert await drain(subscription) == [1]
    broadcast.end()
    assert await drain(other) == [1, 2]


async def test_a_closed_subscription_is_forgotten():
    broadcast: Broadcast[int] = Broadcast()
    kept = Subscription(broadcast)
    Subscription(broadcast).close()
    assert list(broadcast._subscriptions) == [kept]
