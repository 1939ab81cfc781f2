"""Sends per second through SmppProvider into the local Perl SMSC (Net::SMPP, tests/support).

`python -m bench.smpp [N] [WINDOW]` prints one JSON line. The figure is what one bind sustains
with `window` submits in flight, receipts included (the SMSC answers every submit_sm and then
sends a deliver_sm that the provider acknowledges). The Perl SMSC is single-threaded per
connection and logs every PDU as JSON, so it, not the provider, is likely the ceiling: read the
number as a floor for the provider and compare it with the sandbox figure on the same machine.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from orchestrator.delivery.receipts import Receipt
from orchestrator.delivery.smpp import SmppConfig
from tests.support.smsc import PerlSmsc, unavailable
from workers.channels.base import OutboundMessage
from workers.providers.base import ProviderContext
from workers.providers.smpp import SmppProvider

__all__ = ["sends_per_second"]


async def sends_per_second(n: int = 2000, window: int = 10) -> float:
    """Start the SMSC, bind, send `n` SMS concurrently (at most `window` unacknowledged),
    and return sends/s from the first submit to the last submit_sm_resp."""
    reason = unavailable()
    if reason is not None:
        raise RuntimeError(f"the SMPP bench needs the Perl SMSC: {reason}")
    workdir = Path(tempfile.mkdtemp(prefix="verify-bench-smpp-"))
    smsc = PerlSmsc(workdir).start()
    receipts = 0

    async def on_receipt(name: str, receipt: Receipt) -> None:
        nonlocal receipts
        receipts += 1

    try:
        async with aiohttp.ClientSession() as http:
            context = ProviderContext(
                http=http, public_url="http://127.0.0.1", seal=lambda s: s, on_receipt=on_receipt
            )
            config = SmppConfig.model_validate(
                {
                    "kind": "smpp",
                    "host": "127.0.0.1",
                    "port": smsc.port,
                    "system_id": smsc.system_id,
                    "password": smsc.password,
                    "source_addr": "ACME",
                    "window": window,
                }
            )
            provider = SmppProvider("bench-smsc", config, context)
            await provider.start()
            try:
                if not await provider.session.wait_bound(10):
                    raise RuntimeError(f"no bind: {provider.session.last_error}")
                messages = [
                    OutboundMessage(
                        id=f"bench{i}:0",
                        tenant="bench",
                        request_id=f"bench{i}",
                        channel="sms",
                        to=f"4477009{i % 10**5:05d}0",  # ends in 0: the SMSC delivers it
                        sender="ACME",
                        text=f"Your ACME code is {i % 10**6:06d}",
                        code=f"{i % 10**6:06d}",
                        locale="en-us",
                    )
                    for i in range(n)
                ]
                t0 = time.perf_counter()
                await asyncio.gather(*(provider.send(m) for m in messages))
                elapsed = time.perf_counter() - t0
            finally:
                await provider.close()
    finally:
        smsc.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return n / elapsed


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 2000
    window = int(argv[1]) if len(argv) > 1 else 10
    rate = asyncio.run(sends_per_second(n, window))
    print(json.dumps({"smpp_sends_per_s": round(rate, 1), "n": n, "window": window}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
