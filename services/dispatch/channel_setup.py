"""Which channel delivers letters and SMS, from settings (dev sink unless configured)."""

from __future__ import annotations

from services.dispatch.channels import (
    Channel,
    DevSinkChannel,
    DigitalPostSF1601Channel,
    NemSmsSF1601Channel,
    RateLimitedChannel,
    SF1601Config,
    SmsGatewayChannel,
    SmsGatewayConfig,
    TokenBucket,
)
from services.dispatch.config import DispatchSettings
from services.dispatch.domain.plan import PAPER_CHANNELS


def _sf1601_config(s: DispatchSettings) -> SF1601Config:
    if not s.sf1601_endpoint:
        raise RuntimeError("SF1601_ENDPOINT is not set")
    return SF1601Config(endpoint=s.sf1601_endpoint, bearer_token=s.sf1601_bearer_token, client_cert=s.sf1601_client_cert,
                        client_key=s.sf1601_client_key, ca_bundle=s.sf1601_ca_bundle)


def _limited(channel: Channel, rate: float) -> Channel:
    return RateLimitedChannel(channel, TokenBucket(rate, max(1.0, rate))) if rate > 0 else channel


def build_channels(s: DispatchSettings) -> dict[str, Channel]:
    """Logical channel (letter | sms | the paper questionnaire's) -> the adapter that delivers it."""
    sink = DevSinkChannel(s.dev_sink_dir) if "dev_sink" in (s.letter_channel, s.sms_channel) else None
    letter = sink if s.letter_channel == "dev_sink" else DigitalPostSF1601Channel(_sf1601_config(s))
    if s.sms_channel == "dev_sink":
        sms = sink
    elif s.sms_channel == "nemsms":
        sms = NemSmsSF1601Channel(_sf1601_config(s))
    else:
        if not (s.sms_gateway_endpoint and s.sms_gateway_api_key):
            raise RuntimeError("SMS_GATEWAY_ENDPOINT and SMS_GATEWAY_API_KEY must be set")
        sms = SmsGatewayChannel(SmsGatewayConfig(endpoint=s.sms_gateway_endpoint, api_key=s.sms_gateway_api_key,
                                                 api_key_header=s.sms_gateway_api_key_header, sender_name=s.sms_sender_name))
    letters = _limited(letter, s.letter_rate_per_second)
    # The paper questionnaire goes through the letters' adapter (SF1601: Fysisk Post).
    return {"letter": letters, "sms": _limited(sms, s.sms_rate_per_second), **dict.fromkeys(PAPER_CHANNELS, letters)}


async def close_channels(channels: dict[str, Channel]) -> None:
    for channel in {id(c): c for c in channels.values()}.values():
        await channel.aclose()
