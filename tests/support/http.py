from __future__ import annotations

import re
from typing import Any

import aiohttp


async def get(url: str, token: str = "") -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers=headers) as response,
    ):
        kind = response.headers.get("Content-Type", "")
        body = await response.json() if "json" in kind else await response.text()
        return response.status, body


async def put(url: str, body: Any, token: str = "") -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.put(url, json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def metric(admin: str, name: str, token: str = "", **labels: str) -> float:
    """The sum of every sample of a metric whose labels include `labels`, from /metrics."""
    _, text = await get(f"{admin}/metrics", token)
    total = 0.0
    for line in text.splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        sample = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(sample.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def post(url: str, body: Any, token: str = "") -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers=headers) as response,
    ):
        return response.status, await response.json()
