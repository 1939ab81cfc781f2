"""The one place that opens Redis connections: a plain URL, or the primary found through Sentinel.

Every process (serve, worker, the CLI) gets its clients here, so they all follow a failover the
same way. With `VERIFY_REDIS_SENTINELS` set, a client asks the Sentinels for the primary's address
whenever it opens a connection (redis-py's `SentinelConnectionPool`): connections to a dead
primary fail (`ConnectionError`), the next ones go to whichever replica the Sentinels promoted, so
no restart is needed. `VERIFY_REDIS_URL` still carries the data connections' scheme (`rediss://`
for TLS), user, password, database and options; its host and port are then ignored.

What callers see while the primary is gone is one family of errors, `unavailable(exc)`: the web
dialects answer it with a retryable 503, the worker runs the job again later. Commands are never
retried here: a commit whose reply was lost may have been applied, and running it twice is the
caller's decision, not the connection's.

`Replication` is the optional `WAIT` after a start's commit (`VERIFY_REDIS_WAIT_REPLICAS`): an
acknowledged start is then on that many replicas, so a failover cannot lose it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from arq.connections import ArqRedis
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestrator.settings import Settings

__all__ = [
    "RETRY_AFTER_SECONDS",
    "NotReplicated",
    "Replication",
    "arq_client",
    "redis_client",
    "replication_for",
    "unavailable",
]

# what a 503 tells clients to wait: a Sentinel failover takes down-after-milliseconds plus a
# second or two, and a client that retries every second finds the new primary soon after
RETRY_AFTER_SECONDS = 1
# a connection attempt that takes longer fails (the URL's `socket_connect_timeout` wins)
CONNECT_TIMEOUT_S = 5.0
# Sentinels answer from memory: a slow one is skipped for the next in the list
SENTINEL_TIMEOUT_S = 1.0

R = TypeVar("R", bound=Redis)


class NotReplicated(RedisError):
    """`WAIT` saw fewer replicas acknowledge a commit than `VERIFY_REDIS_WAIT_REPLICAS` asks."""

    def __init__(self, acknowledged: int, wanted: int) -> None:
        super().__init__(f"{acknowledged} of {wanted} replicas acknowledged the write in time")
        self.acknowledged = acknowledged
        self.wanted = wanted


def unavailable(exc: BaseException) -> bool:
    """Redis can't take the request now, and a retry soon may succeed: connection refused or
    lost, a timeout, no primary known to the Sentinels, a demoted primary refusing writes (also
    as Redis < 7 reports it from inside a script), or too few replicas for `WAIT`."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | ReadOnlyError | NotReplicated):
        return True
    return isinstance(exc, ResponseError) and _demoted(exc)


def _demoted(exc: ResponseError) -> bool:
    text = str(exc)
    return "READONLY" in text or text.startswith("MASTERDOWN")


class _FollowingConnection(SentinelManagedConnection):
    """redis-py drops a connection whose primary became a replica on a plain READONLY reply;
    Redis 6 wraps that reply in an `ERR Error running script` when the write was a Lua call,
    which is how every commit writes. Treat both alike, or the connection would stay on the
    demoted primary, failing every commit, for as long as it lives."""

    async def read_response(
        self,
        disable_decoding: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - redis-py's signature, overridden
        *,
        disconnect_on_error: float | None = True,  # (sic: redis-py's annotation)
        push_request: bool | None = False,
    ) -> Any:
        try:
            return await super().read_response(
                disable_decoding=disable_decoding,
                timeout=timeout,
                disconnect_on_error=disconnect_on_error,
                push_request=push_request,
            )
        except ResponseError as exc:
            if self.connection_pool.is_master and _demoted(exc):
                await self.disconnect()
                raise RedisConnectionError("the previous primary is now a replica") from exc
            raise


class _FollowingSSLConnection(_FollowingConnection, SSLConnection):
    pass


class _SentinelPool(SentinelConnectionPool):
    """Closing the client closes its Sentinel connections too (redis-py leaves them open)."""

    async def disconnect(self, inuse_connections: bool = True) -> None:
        await super().disconnect(inuse_connections)
        if inuse_connections:  # a full close, not the re-point after a new primary was found
            for sentinel in self.sentinel_manager.sentinels:
                await sentinel.connection_pool.disconnect()


def _data_kwargs(url: str) -> dict[str, Any]:
    """The data connections' options from VERIFY_REDIS_URL, without its address."""
    kwargs: dict[str, Any] = dict(parse_url(url))
    connection_class = kwargs.pop("connection_class", None)
    if "path" in kwargs:
        raise ValueError("VERIFY_REDIS_URL: a unix:// socket can't be used with Sentinel")
    kwargs.pop("host", None)
    kwargs.pop("port", None)
    ssl = connection_class is not None and issubclass(connection_class, SSLConnection)
    kwargs["connection_class"] = _FollowingSSLConnection if ssl else _FollowingConnection
    kwargs.setdefault("socket_connect_timeout", CONNECT_TIMEOUT_S)
    return kwargs


def redis_client(settings: Settings) -> Redis:
    """A client of the primary: VERIFY_REDIS_URL's server, or the one the Sentinels name.
    Creating it opens nothing; connections are made (and the primary looked up) on use."""
    return _client(settings, Redis)


def _client(settings: Settings, redis_class: type[R]) -> R:
    if not settings.redis_sentinels:
        plain: R = redis_class.from_url(
            settings.redis_url, socket_connect_timeout=CONNECT_TIMEOUT_S
        )
        return plain
    password = settings.redis_sentinel_password
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": SENTINEL_TIMEOUT_S,
        "socket_connect_timeout": SENTINEL_TIMEOUT_S,
    }
    if password is not None:
        sentinel_kwargs["password"] = password.get_secret_value()
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        settings.sentinel_addresses(), sentinel_kwargs=sentinel_kwargs
    )
    assert settings.redis_sentinel_master is not None  # the settings refuse one without the other
    client = sentinel.master_for(
        settings.redis_sentinel_master,
        redis_class=redis_class,
        connection_pool_class=_SentinelPool,
        **_data_kwargs(settings.redis_url),
    )
    return client  # type: ignore[no-any-return]


def arq_client(
    settings: Settings, *, job_serializer: Any = None, job_deserializer: Any = None
) -> ArqRedis:
    """`redis_client` as arq's pool class, set up as `arq.connections.create_pool` would (it is
    given to the worker as `redis_pool`, so arq's own connection code is not used)."""
    pool = _client(settings, ArqRedis)
    pool.job_serializer = job_serializer
    pool.job_deserializer = job_deserializer
    return pool


@dataclass(frozen=True, slots=True)
class Replication:
    """`WAIT replicas timeout` after a write, on the connection that wrote it (WAIT counts the
    replicas that have that connection's last write)."""

    replicas: int
    timeout_ms: int

    async def confirm(self, connection: Redis) -> None:
        acknowledged = int(await connection.wait(self.replicas, self.timeout_ms))
        if acknowledged < self.replicas:
            raise NotReplicated(acknowledged, self.replicas)


def replication_for(settings: Settings) -> Replication | None:
    """The WAIT that VERIFY_REDIS_WAIT_REPLICAS asks for after a start; None: don't wait."""
    if settings.redis_wait_replicas <= 0:
        return None
    timeout_ms = max(1, round(settings.redis_wait_timeout_seconds * 1000))
    return Replication(settings.redis_wait_replicas, timeout_ms)
