"""One SMPP 3.4 transceiver session over asyncio, kept bound for as long as the worker runs.

A background task connects, binds (bind_transceiver), then reads every PDU the SMSC sends:
responses resolve the future of the request with the same sequence number, enquire_link is
answered, deliver_sm goes to the handler and is answered with deliver_sm_resp once the handler
is done (a handler that raises answers ESME_RX_T_APPN, so the SMSC sends the receipt again),
and the SMSC's unbind is acknowledged. Its own enquire_link every `enquire_link_seconds` finds a
dead link that TCP would not report. After a drop it reconnects with exponential backoff and
jitter; a refused bind is retried the same way (the SMSC's operator may fix the account).

`submit()` holds one of `window` slots from writing submit_sm until its response, so at most
`window` submits are ever unacknowledged; a submit that gets no response within the timeout
gives its slot back (the late response, if any, is dropped), so a stuck SMSC cannot starve the
window for good. `throughput` spaces submits evenly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from workers.providers.smpp.pdu import (
    BIND_TRANSCEIVER,
    BIND_TRANSCEIVER_RESP,
    DELIVER_SM,
    DELIVER_SM_RESP,
    ENQUIRE_LINK,
    ENQUIRE_LINK_RESP,
    GENERIC_NACK,
    HEADER_SIZE,
    SUBMIT_SM,
    SUBMIT_SM_RESP,
    UNBIND,
    UNBIND_RESP,
    BindTransceiver,
    Header,
    PduError,
    ShortMessage,
    decode_header,
    decode_message_id,
    describe_status,
    encode_message_id,
    encode_pdu,
)

__all__ = [
    "ConnectionLost",
    "NotBound",
    "Session",
    "SessionError",
    "SessionSettings",
    "SubmitRefused",
    "SubmitTimeout",
]

log = logging.getLogger("workers.providers.smpp")

ESME_RINVCMDID = 0x03
ESME_RX_T_APPN = 0x64  # "temporary application error": the SMSC retries the deliver_sm
ESME_RX_P_APPN = 0x65  # permanent: a deliver_sm we can't even decode
_RANDOM = secrets.SystemRandom()


class SessionError(Exception):
    """A submit that did not get an answer from the SMSC (the message says why, no secret)."""


class NotBound(SessionError):
    pass


class SubmitTimeout(SessionError):
    pass


class ConnectionLost(SessionError):
    pass


class SubmitRefused(SessionError):
    def __init__(self, status: int) -> None:
        super().__init__(describe_status(status))
        self.status = status


class _BindRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(describe_status(status))
        self.status = status


@dataclass(frozen=True)
class SessionSettings:
    host: str
    port: int
    bind: BindTransceiver
    window: int = 10
    throughput: float | None = None
    enquire_link_seconds: float = 30
    timeout_seconds: float = 10
    reconnect_min_seconds: float = 1
    reconnect_max_seconds: float = 60


@dataclass
class _Waiter:
    future: asyncio.Future[tuple[int, bytes]]
    on_id: Callable[[str], None] | None = None


DeliverHandler = Callable[[ShortMessage], Awaitable[None]]


class Session:
    """A self-healing bind; see the module docstring. Create, `start()`, `submit()`, `close()`."""

    def __init__(self, settings: SessionSettings, on_deliver: DeliverHandler) -> None:
        self.settings = settings
        self._on_deliver = on_deliver
        self._where = f"{settings.host}:{settings.port}"
        self._pending: dict[int, _Waiter] = {}
        self._sequence = _RANDOM.randrange(0x1000)
        self._window = asyncio.Semaphore(settings.window)
        self._writer: asyncio.StreamWriter | None = None
        self._bound = asyncio.Event()
        self._settled = asyncio.Event()  # the current connection attempt has an outcome
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._pace_lock = asyncio.Lock()
        self._next_submit_at = 0.0
        self.last_error: str | None = "not started"
        self.binds = 0  # successful binds so far (a reconnect adds one)

    @property
    def bound(self) -> bool:
        return self._bound.is_set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"smpp {self._where}")

    async def wait_bound(self, within: float) -> bool:
        """True once bound; False when the attempt under way failed or `within` s passed."""
        if self.bound:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), within)
        return self.bound

    # ---- requests ----

    def _next_sequence(self) -> int:
        self._sequence = self._sequence % 0x7FFFFFFF + 1  # 1 .. 0x7FFFFFFF, then round again
        return self._sequence

    async def submit(
        self, message: ShortMessage, on_id: Callable[[str], None] | None = None
    ) -> str:
        """Send one submit_sm; the SMSC's message_id. `on_id` sees the id as soon as the
        response is read, before any receipt for it can be (receipts follow on the same link)."""
        loop = asyncio.get_running_loop()
        timeout = self.settings.timeout_seconds
        deadline = loop.time() + timeout
        if self._closing.is_set():
            raise NotBound(f"not bound to {self._where} (the session is closed)")
        if not await self.wait_bound(timeout):
            raise NotBound(f"not bound to {self._where} ({self.last_error})")
        try:
            await asyncio.wait_for(self._window.acquire(), max(0.0, deadline - loop.time()))
        except TimeoutError:
            raise SubmitTimeout(f"window of {self.settings.window} full for {timeout:g}s") from None
        try:
            await self._pace()
            status, body = await self._request(
                SUBMIT_SM, message.encode(), deadline - loop.time(), on_id
            )
        except SubmitTimeout:
            raise SubmitTimeout(
                f"no submit_sm_resp from {self._where} within {timeout:g}s"
            ) from None
        finally:
            self._window.release()
        if status != 0:
            raise SubmitRefused(status)
        return decode_message_id(body)

    async def _pace(self) -> None:
        if self.settings.throughput is None:
            return
        loop = asyncio.get_running_loop()
        async with self._pace_lock:
            wait = self._next_submit_at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            now = loop.time()
            self._next_submit_at = max(now, self._next_submit_at) + 1 / self.settings.throughput

    async def _request(
        self,
        command_id: int,
        body: bytes,
        within: float,
        on_id: Callable[[str], None] | None = None,
    ) -> tuple[int, bytes]:
        writer = self._writer
        if writer is None or not self.bound:
            raise NotBound(f"not bound to {self._where} ({self.last_error})")
        sequence = self._next_sequence()
        waiter = _Waiter(asyncio.get_running_loop().create_future(), on_id)
        self._pending[sequence] = waiter
        try:
            writer.write(encode_pdu(command_id, sequence, body))
            await writer.drain()
            return await asyncio.wait_for(waiter.future, max(0.0, within))
        except TimeoutError:
            raise SubmitTimeout(f"no response from {self._where} within {within:g}s") from None
        except OSError as exc:
            raise ConnectionLost(f"connection to {self._where} lost ({exc})") from None
        finally:
            self._pending.pop(sequence, None)

    # ---- the connection ----

    async def _run(self) -> None:
        attempt = 0
        while not self._closing.is_set():
            self._settled.clear()
            try:
                reader = await self._connect_and_bind()
            except _BindRefused as exc:
                self.last_error = f"bind_transceiver refused: {exc}"
            except (OSError, TimeoutError, PduError, asyncio.IncompleteReadError) as exc:
                self.last_error = f"can't bind to {self._where}: {_reason(exc)}"
            except Exception as exc:  # a bug must not end the session task: log, retry
                log.exception("smpp: binding to %s failed", self._where)
                self.last_error = f"can't bind to {self._where}: {type(exc).__name__}"
            else:
                attempt = 0
                self.binds += 1
                self.last_error = None
                self._bound.set()
                self._settled.set()
                log.info("smpp: bound to %s", self._where)
                try:
                    await self._serve(reader)
                    self.last_error = "the SMSC closed the session"
                except (OSError, PduError, asyncio.IncompleteReadError) as exc:
                    self.last_error = f"connection to {self._where} lost: {_reason(exc)}"
                except Exception as exc:
                    log.exception("smpp: session with %s failed", self._where)
                    self.last_error = f"connection to {self._where} lost: {type(exc).__name__}"
            self._drop()
            self._settled.set()
            if self._closing.is_set():
                break
            delay = self._backoff(attempt)
            attempt += 1
            log.warning("smpp: %s; retrying in %.1fs", self.last_error, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay)

    def _backoff(self, attempt: int) -> float:
        low, high = self.settings.reconnect_min_seconds, self.settings.reconnect_max_seconds
        ceiling = min(high, low * 2 ** min(attempt, 30))
        return _RANDOM.uniform(max(low, ceiling / 2), ceiling)  # jitter: reconnects don't align

    async def _connect_and_bind(self) -> asyncio.StreamReader:
        timeout = self.settings.timeout_seconds
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.settings.host, self.settings.port), timeout
        )
        self._writer = writer
        sequence = self._next_sequence()
        writer.write(encode_pdu(BIND_TRANSCEIVER, sequence, self.settings.bind.encode()))
        await writer.drain()
        async with asyncio.timeout(timeout):
            while True:
                header, _ = await _read_pdu(reader)
                if header.command_id == ENQUIRE_LINK:
                    writer.write(encode_pdu(ENQUIRE_LINK_RESP, header.sequence))
                    continue
                if header.sequence != sequence:
                    continue
                if header.command_id not in (BIND_TRANSCEIVER_RESP, GENERIC_NACK):
                    raise PduError(f"answer 0x{header.command_id:08X} to bind_transceiver")
                if header.status != 0 or header.command_id == GENERIC_NACK:
                    raise _BindRefused(header.status)
                return reader

    async def _serve(self, reader: asyncio.StreamReader) -> None:
        keepalive = asyncio.create_task(self._keepalive())
        try:
            while True:
                header, body = await _read_pdu(reader)
                if not self._dispatch(header, body):
                    return
        finally:
            keepalive.cancel()
            await asyncio.gather(keepalive, return_exceptions=True)

    async def _keepalive(self) -> None:
        """enquire_link on a timer; no answer in time means a dead link: drop it."""
        while True:
            await asyncio.sleep(self.settings.enquire_link_seconds)
            try:
                await self._request(ENQUIRE_LINK, b"", self.settings.timeout_seconds)
            except SessionError as exc:
                log.warning("smpp: enquire_link to %s unanswered (%s)", self._where, exc)
                if self._writer is not None:
                    self._writer.close()
                return

    def _dispatch(self, header: Header, body: bytes) -> bool:
        """Handle one PDU from the SMSC; False when the session is over (the SMSC unbound)."""
        writer = self._writer
        assert writer is not None
        command_id = header.command_id
        if command_id & 0x80000000:  # a response (generic_nack included)
            waiter = self._pending.get(header.sequence)
            if waiter is not None and not waiter.future.done():
                if command_id == SUBMIT_SM_RESP and header.status == 0 and waiter.on_id:
                    try:
                        waiter.on_id(decode_message_id(body))
                    except Exception:  # a bad id or a faulty callback must not kill the reader
                        log.exception("smpp: submit_sm_resp from %s not handled", self._where)
                waiter.future.set_result((header.status, body))
            return True
        if command_id == ENQUIRE_LINK:
            writer.write(encode_pdu(ENQUIRE_LINK_RESP, header.sequence))
        elif command_id == DELIVER_SM:
            try:
                message = ShortMessage.decode(body)
            except PduError as exc:
                log.warning("smpp: undecodable deliver_sm from %s: %s", self._where, exc)
                writer.write(encode_pdu(DELIVER_SM_RESP, header.sequence, b"\x00", ESME_RX_P_APPN))
                return True
            task = asyncio.create_task(self._deliver(message, header.sequence, writer))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        elif command_id == UNBIND:
            writer.write(encode_pdu(UNBIND_RESP, header.sequence))
            writer.close()
            return False
        else:
            writer.write(encode_pdu(GENERIC_NACK, header.sequence, status=ESME_RINVCMDID))
        return True

    async def _deliver(
        self, message: ShortMessage, sequence: int, writer: asyncio.StreamWriter
    ) -> None:
        status = 0
        try:
            await self._on_deliver(message)
        except Exception:
            log.exception("smpp: deliver_sm from %s not handled; the SMSC will retry", self._where)
            status = ESME_RX_T_APPN
        if not writer.is_closing():  # the answer belongs to the link the request came on
            writer.write(encode_pdu(DELIVER_SM_RESP, sequence, encode_message_id(""), status))

    def _drop(self) -> None:
        self._bound.clear()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        for waiter in self._pending.values():
            if not waiter.future.done():
                waiter.future.set_exception(
                    ConnectionLost(f"connection to {self._where} lost ({self.last_error})")
                )
        self._pending.clear()

    async def close(self) -> None:
        """unbind (waiting briefly for unbind_resp), close the link, stop reconnecting."""
        self._closing.set()
        if self.bound:
            try:
                await self._request(UNBIND, b"", min(self.settings.timeout_seconds, 5.0))
            except SessionError as exc:
                log.info("smpp: unbind from %s unanswered (%s)", self._where, exc)
        if self._writer is not None:
            self._writer.close()
        task, self._task = self._task, None
        if task is not None:
            if not self.bound:
                task.cancel()  # connecting or backing off: nothing to wait for
            await asyncio.wait({task}, timeout=5)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._drop()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        self.last_error = "closed"


async def _read_pdu(reader: asyncio.StreamReader) -> tuple[Header, bytes]:
    header = decode_header(await reader.readexactly(HEADER_SIZE))
    body = await reader.readexactly(header.length - HEADER_SIZE)
    return header, body


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
