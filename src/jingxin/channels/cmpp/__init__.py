"""CMPP 2.0 (China Mobile Peer to Peer), the SP side: codec, Msg_Id, authentication and
the asyncio client :class:`CmppChannel`. See docs/channels-cmpp.md."""

from jingxin.channels.cmpp.client import CmppChannel, CmppOptions, from_settings
from jingxin.channels.cmpp.link import LinkDown, LinkOptions
from jingxin.channels.cmpp.results import SubmitError

__all__ = ["CmppChannel", "CmppOptions", "LinkDown", "LinkOptions", "SubmitError", "from_settings"]
