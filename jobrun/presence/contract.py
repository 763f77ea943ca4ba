"""The presence contract: what the service, maintenance, the scheduler, producers and
operator commands ask about the services of one store (see presence/__init__.py)."""

from __future__ import annotations

import abc
from typing import Any, Protocol


class Doorbell(Protocol):
    """A service's side of the doorbell: something its loop sleeps on."""

    def wake(self) -> None:
        """From a thread of this process."""

    def wait(self, timeout: float) -> bool:
        """Sleep until woken or `timeout`; whether a producer rang (not our own threads)."""

    def close(self) -> None: ...


class Ringer(Protocol):
    """A producer's side: wake every live service after a commit."""

    def ring(self) -> None:
        """After a commit of ours."""

    def ring_after(self, connection: Any) -> None:
        """Once the caller's transaction on `connection` commits (a rollback rings nobody)."""


class Liveness(abc.ABC):
    """This service's liveness, held while it serves: its death frees it at once."""

    holder: str
    #: How often `keep` found it lost and took it again (its running jobs may be rescued).
    losses: int = 0

    @abc.abstractmethod
    def acquire(self) -> bool:
        """Take it, with what others may read about us (`Presence.info`)."""

    @abc.abstractmethod
    def publish(self, info: dict[str, Any]) -> None:
        """Replace what others read about us (a reload: queues and caps)."""

    @abc.abstractmethod
    def keep(self) -> bool:
        """Take it again if it was lost (a connection cut off); whether it is held now."""

    @abc.abstractmethod
    def release(self) -> None: ...


class Leadership(abc.ABC):
    """The cron leader's lock: one holder at a time across every service of the store."""

    @property
    @abc.abstractmethod
    def held(self) -> bool:
        """Whether we hold it still (a lock lost with its connection is not held)."""

    @abc.abstractmethod
    def acquire(self, holder: str) -> bool:
        """Try to lead, saying who leads for readers; False if another does."""

    @abc.abstractmethod
    def release(self) -> None: ...


class Presence(abc.ABC):
    """Liveness and leadership of the services of one store."""

    @abc.abstractmethod
    def liveness(self, holder: str, info: dict[str, Any] | None = None) -> Liveness: ...

    @abc.abstractmethod
    def alive(self, holder: str) -> bool:
        """Whether service `holder` still holds its liveness (on any host)."""

    @abc.abstractmethod
    def holders(self) -> list[str]:
        """Holders that said they serve (some may have just died: ask `alive`)."""

    @abc.abstractmethod
    def info(self, holder: str) -> dict[str, Any]:
        """What a service published about itself: pid, host, queues, started."""

    @abc.abstractmethod
    def sweep(self, mine: str) -> None:
        """Forget what dead holders published (never `mine`)."""

    def began_path(self, holder: str) -> str | None:
        """Where `holder` logs the held jobs it begins (jobrun/began.py); None: nowhere (its
        rescue counts every held job as begun)."""
        return None

    def lost(self, holder: str) -> str:
        """What happened to a holder whose liveness is free, for its jobs' rescue entries."""
        return f"service process {holder} died"

    @abc.abstractmethod
    def leadership(self) -> Leadership: ...

    @abc.abstractmethod
    def leader(self) -> str | None:
        """The holder id of the current cron leader, if one leads ("?" if it did not say)."""

    @abc.abstractmethod
    def bell(self, holder: str) -> Doorbell: ...

    @abc.abstractmethod
    def ringer(self) -> Ringer: ...

    @abc.abstractmethod
    def wake_all(self) -> None:
        """Wake every live service now (an operator's retry or resume)."""

    def live_queues(self) -> dict[str, list[str]]:
        """Queue -> the live services (holder ids) serving it, from what they published."""
        out: dict[str, list[str]] = {}
        for h in self.holders():
            queues = self.info(h).get("queues") or {}
            if isinstance(queues, dict) and queues and self.alive(h):
                for q in queues:
                    out.setdefault(str(q), []).append(h)
        return out

