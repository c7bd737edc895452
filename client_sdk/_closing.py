"""`with` and `async with` for the SDK's objects: leaving the block closes the object."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class AsyncClosing:
    """`async with` awaits `close()` on exit, whatever ended the block."""

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


class Closing:
    """`with` calls `close()` on exit, whatever ended the block."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
