"""`SmppProvider`: SMS through an SMSC over SMPP 3.4, receipts in-band.

The codec and session are our own: aiosmpplib drives sends through a broker queue and hooks, so
a send cannot await its own submit_sm_resp, and smpp34's Python binding exposes neither the
enquire_link interval nor the response timer and leaves reconnecting to the caller, inside an
opaque native wheel; SMPP 3.4's subset an ESME needs is small enough to own and test.

A text goes out as one submit_sm or as concatenated parts (workers/providers/smpp/text.py). The
Accepted id is the SMSC's message_id, for a long text the first part's: every part's receipt is
translated to that id, and the message counts as delivered once all parts are, failed as soon as
one part fails.
"""

from __future__ import annotations

import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.delivery.receipts import Receipt
from orchestrator.delivery.smpp import SmppConfig
from workers.channels.base import OutboundMessage
from workers.providers.base import Accepted, Provider, ProviderContext, ProviderError
from workers.providers.smpp.pdu import TLV_MESSAGE_PAYLOAD, BindTransceiver, PduError, ShortMessage
from workers.providers.smpp.receipts import receipt_from_deliver_sm
from workers.providers.smpp.session import (
    Session,
    SessionError,
    SessionSettings,
    SubmitRefused,
)
from workers.providers.smpp.text import Part, text_parts

__all__ = ["SmppProvider"]

log = logging.getLogger("workers.providers.smpp")

# part ids of long messages whose receipts are still awaited; the oldest are forgotten past this
# (a receipt that never comes must not grow the map for ever)
_MAX_TRACKED_PARTS = 50_000


@dataclass
class _Group:
    """The parts of one concatenated message, folding their receipts into one."""

    total: int
    primary: str = ""
    ids: list[str] = field(default_factory=list)
    delivered: set[str] = field(default_factory=set)
    sent_reported: bool = False
    done: bool = False

    def fold(self, receipt: Receipt) -> Receipt | None:
        if self.done:
            return None
        if receipt.status == "failed":
            self.done = True
            return Receipt(self.primary, "failed", receipt.error, receipt.raw_status)
        if receipt.status == "delivered":
            self.delivered.add(receipt.provider_id)
            if len(self.delivered) == self.total:
                self.done = True
                return Receipt(self.primary, "delivered", None, receipt.raw_status)
            return None
        if not self.sent_reported:
            self.sent_reported = True
            return Receipt(self.primary, "sent", None, receipt.raw_status)
        return None


class SmppProvider(Provider):
    """One configured SMSC (`kind = "smpp"`); `start()` binds in the background."""

    def __init__(self, name: str, config: SmppConfig, context: ProviderContext) -> None:
        self.name = name
        self.config = config
        self._context = context
        bind = BindTransceiver(
            system_id=config.system_id,
            password=config.password.get_secret_value(),
            system_type=config.system_type,
        )
        self.session = Session(
            SessionSettings(
                host=config.host,
                port=config.port,
                bind=bind,
                window=config.window,
                throughput=config.throughput,
                enquire_link_seconds=config.enquire_link_seconds,
                timeout_seconds=config.timeout_seconds,
                reconnect_min_seconds=config.reconnect_min_seconds,
                reconnect_max_seconds=config.reconnect_max_seconds,
            ),
            self._on_deliver,
        )
        self._reference = secrets.randbelow(256)
        self._parts: OrderedDict[str, _Group] = OrderedDict()

    @property
    def bound(self) -> bool:
        return self.session.bound

    async def start(self) -> None:
        """Start binding; returns at once. An unreachable SMSC is retried, never raised."""
        self.session.start()

    async def close(self) -> None:
        await self.session.close()

    async def send(self, message: OutboundMessage) -> Accepted | None:
        self._reference = (self._reference + 1) % 256
        try:
            parts = text_parts(message.text, self._reference, self.config.long_messages)
        except ValueError as exc:
            raise ProviderError(f"smpp {self.name}: {exc}") from None
        if len(parts) == 1:
            message_id = await self._submit(message, parts[0], None)
            return Accepted(message_id) if message_id else None
        group = _Group(total=len(parts))
        for part in parts:
            # sequential: part 1's id is the message's before any later part can be answered
            await self._submit(message, part, lambda part_id: self._track(group, part_id))
        return Accepted(group.primary) if group.primary else None

    def _short_message(self, message: OutboundMessage, part: Part) -> ShortMessage:
        ton, npi = self.config.source_ton_npi()
        return ShortMessage(
            source_addr=self.config.source(),
            destination_addr=message.to.lstrip("+"),
            short_message=part.short_message,
            source_addr_ton=ton,
            source_addr_npi=npi,
            dest_addr_ton=self.config.dest_addr_ton,
            dest_addr_npi=self.config.dest_addr_npi,
            esm_class=part.esm_class,
            registered_delivery=1 if self.config.registered_delivery else 0,
            data_coding=part.data_coding,
            tlvs={TLV_MESSAGE_PAYLOAD: part.payload} if part.payload is not None else {},
        )

    async def _submit(
        self, message: OutboundMessage, part: Part, on_id: Callable[[str], None] | None
    ) -> str:
        pdu = self._short_message(message, part)
        try:
            return await self.session.submit(pdu, on_id)
        except SubmitRefused as exc:
            raise ProviderError(f"smpp {self.name}: submit_sm refused: {exc}") from None
        except SessionError as exc:
            raise ProviderError(f"smpp {self.name}: {exc}") from None
        except PduError as exc:  # a destination SMPP can't carry (too long, not ASCII)
            raise ProviderError(f"smpp {self.name}: can't encode submit_sm: {exc}") from None

    def _track(self, group: _Group, part_id: str) -> None:
        if not part_id:
            return
        if not group.primary:
            group.primary = part_id
        group.ids.append(part_id)
        self._parts[part_id] = group
        while len(self._parts) > _MAX_TRACKED_PARTS:
            self._parts.popitem(last=False)

    async def _on_deliver(self, deliver: ShortMessage) -> None:
        receipt = receipt_from_deliver_sm(deliver)
        if receipt is None:
            log.info("smpp %s: deliver_sm that is no receipt ignored", self.name)
            return
        group = self._parts.get(receipt.provider_id)
        if group is not None:
            folded = group.fold(receipt)
            if group.done:
                for part_id in group.ids:
                    self._parts.pop(part_id, None)
            if folded is None:
                return
            receipt = folded
        await self._context.on_receipt(self.name, receipt)
