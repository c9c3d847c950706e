"""``jingxin smsc`` (the simulator and MO injection) and ``jingxin send`` (one message)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import typer

from jingxin.config import load_settings
from jingxin.errors import ChannelError

smsc_app = typer.Typer(
    help="Run the SMSC simulator (SMPP, CMPP and an MO endpoint); `smsc mo` injects MO.",
    invoke_without_command=True,
)


@smsc_app.callback()
def smsc(
    ctx: typer.Context,
    preset: str = typer.Option(None, help="happy | throttling | flaky | receipt-before-response"),
    host: str = typer.Option(None, help="Listen address (default from settings: 127.0.0.1)."),
    smpp_port: int = typer.Option(None, min=0, max=65535, help="SMPP port (settings smsc.smpp_port, 2775; 0: any free port)."),
    cmpp_port: int = typer.Option(None, min=0, max=65535, help="CMPP port (settings smsc.cmpp_port, 7890; 0: any free port)."),
    http_port: int = typer.Option(None, min=0, max=65535, help="MO endpoint port (settings smsc.http_port, 8775; 0: any free port)."),
    no_cmpp: bool = typer.Option(False, "--no-cmpp", help="Do not start the CMPP server."),
    tps: float = typer.Option(None, help="Submits/s per bind above which ESME_RTHROTTLED."),
    latency: float = typer.Option(None, help="Seconds before each submit response."),
    receipt_delay: float = typer.Option(None, help="Seconds between response and receipt."),
    status_mix: str = typer.Option(None, help="Receipt states, e.g. DELIVRD=0.9,UNDELIV=0.1"),
    lose_response: float = typer.Option(None, help="Probability a submit gets no response."),
    disconnect: float = typer.Option(None, help="Probability per submit of dropping the link."),
    credentials: list[str] = typer.Option(None, help="system_id:password (repeat); none = any."),
    seed: int = typer.Option(None, help="Random seed for reproducible runs."),
    record: Path = typer.Option(None, help="Append every received PDU to this JSONL file."),
    script: Path = typer.Option(None, help="MO script to play once bound: 'delay, from, to, text'."),
) -> None:
    """Run the simulator until Ctrl-C, printing the listening ports."""
    if ctx.invoked_subcommand is not None:
        return
    from jingxin.smsc.behaviour import from_flags
    from jingxin.smsc.mo import read_script, run_script
    from jingxin.smsc.record import Record
    from jingxin.smsc.server import Simulator, serve

    cfg = load_settings().smsc
    behaviour = from_flags(
        preset or cfg.preset, tps=tps, latency=latency, receipt_delay=receipt_delay,
        status_mix=status_mix, lose_response=lose_response, disconnect=disconnect,
        credentials=credentials, seed=seed,
    )  # fmt: skip
    lines = read_script(script) if script else []
    simulator = Simulator(
        behaviour=behaviour,
        host=host or cfg.host,
        smpp_port=cfg.smpp_port if smpp_port is None else smpp_port,
        cmpp_port=None if no_cmpp else (cfg.cmpp_port if cmpp_port is None else cmpp_port),
        http_port=cfg.http_port if http_port is None else http_port,
        record=Record(keep=10_000, path=record),
    )

    async def run() -> None:
        server = asyncio.create_task(serve(simulator, announce=lambda s: typer.echo(s)))
        if lines:
            await _play_when_bound(simulator, lines, run_script)
        await server

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


async def _play_when_bound(simulator, lines, run_script) -> None:  # noqa: ANN001
    while not (simulator.smpp and simulator.smpp.receivers()):
        await asyncio.sleep(0.2)
    sent = await run_script(lines, simulator.inject_mo)
    typer.echo(f"script: {sent} MO messages delivered")


@smsc_app.command("mo")
def smsc_mo(
    source: str = typer.Option(None, "--from", help="Subscriber MSISDN sending the MO."),
    destination: str = typer.Option(None, "--to", help="Service number, e.g. 10086."),
    text: str = typer.Option(None, help="Message text."),
    script: Path = typer.Option(None, help="Play a script of lines 'delay, from, to, text'."),
    url: str = typer.Option(None, help="MO endpoint (default http://127.0.0.1:<smsc.http_port>)."),
) -> None:
    """Ask the running simulator to deliver MO messages (POST /mo)."""
    from jingxin.smsc.mo import post_mo, read_script

    cfg = load_settings().smsc
    endpoint = url or f"http://{cfg.host}:{cfg.http_port}"
    if script is not None:
        for line in read_script(script):
            time.sleep(line.delay)
            answer = post_mo(endpoint, source=line.source, destination=line.destination, text=line.text)
            typer.echo(f"{line.source} -> {line.destination}: {answer['parts']} part(s)")
        return
    if not (source and destination and text is not None):
        raise typer.BadParameter("give --from, --to and --text, or --script FILE")
    answer = post_mo(endpoint, source=source, destination=destination, text=text)
    typer.echo(f"delivered {source} -> {destination} in {answer['parts']} part(s)")


def send(
    channel: str = typer.Option("sim-smpp", help="Channel name from the settings."),
    to: str = typer.Option(..., "--to", help="Destination MSISDN, e.g. 13812345678."),
    text: str = typer.Option(..., help="Message text (split automatically)."),
    source: str = typer.Option(None, "--from", help="Source address (default: the channel's)."),
    wait: float = typer.Option(10.0, help="Seconds to wait for the delivery receipts (0: don't)."),
    category: str = typer.Option("notification", help="otp, notification or marketing "
                                 "(marketing gets the unsubscribe route)."),
    signature: str = typer.Option(None, help="Signature in front, e.g. 【中国移动】 "
                                  "(default: the operator's)."),
) -> None:
    """Send one message through a configured channel; print ids and the receipts.

    The text goes out as a campaign's would: signature in front, the unsubscribe route on
    marketing, at most ``content.max_parts`` parts; a bad number or a text too long is
    refused before any connection is made."""
    from jingxin.channels.registry import build_channel, find_channel
    from jingxin.domain.sms import OutboundSms

    config = load_settings()
    settings = find_channel(config.channels, channel)
    to, text = _outgoing(to=to, text=text, category=category, signature=signature,
                         content=config.content)  # fmt: skip

    async def run() -> None:
        receipts: dict[str, object] = {}
        arrived = asyncio.Event()

        def on_receipt(receipt: object) -> None:
            receipts[receipt.message_id] = receipt  # type: ignore[attr-defined]
            arrived.set()

        link = build_channel(settings, on_receipt=on_receipt)
        await link.start()
        try:
            message = OutboundSms(destination=to, text=text, source_addr=source, registered_delivery=wait > 0)
            result = await link.submit(message)
            typer.echo(f"submitted {result.parts} part(s): message ids {', '.join(result.message_ids)}")
            deadline = time.monotonic() + wait
            while wait > 0 and not set(result.message_ids) <= set(receipts):
                arrived.clear()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    missing = sorted(set(result.message_ids) - set(receipts))
                    typer.echo(f"no receipt within {wait:g}s for {', '.join(missing)}")
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), remaining)
            for message_id in result.message_ids:
                if message_id in receipts:
                    r = receipts[message_id]
                    typer.echo(f"receipt {message_id}: {r.status.value} err={r.error_code}")  # type: ignore[attr-defined]
        finally:
            await link.close()

    try:
        asyncio.run(run())
    except ChannelError:
        raise
    except OSError as exc:
        raise ChannelError(f"channel {channel}: {exc}") from exc


def _outgoing(*, to: str, text: str, category: str, signature: str | None,
              content) -> tuple[str, str]:  # noqa: ANN001
    """The E.164 destination and the final text, checked as the campaign path checks them."""
    from jingxin.content.encoding import count_parts
    from jingxin.content.templates import compose
    from jingxin.data.store.tenants import DEFAULT_SIGNATURE
    from jingxin.data.validate import valid_category, valid_msisdn
    from jingxin.errors import InputError, TemplateError

    number = valid_msisdn(to, field="--to")
    valid_category(category, field="--category")
    if not text.strip():
        raise InputError("--text: the message is empty")
    try:
        final = compose(text, category=category, signature=signature or DEFAULT_SIGNATURE,
                        unsubscribe_text=content.unsubscribe_text, where="--text")  # fmt: skip
    except ValueError as exc:  # an empty signature
        raise InputError(f"--signature: {exc}") from exc
    parts = count_parts(final)
    if parts.parts > content.max_parts:
        raise TemplateError(
            f"--text: the message needs {parts.parts} parts ({parts.units} {parts.encoding} "
            f"units with the signature); at most {content.max_parts} are allowed "
            "(content.max_parts)")
    return number, final


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(smsc_app, name="smsc")
    app.command("send")(send)
