"""SMPP 3.4: PDU codec (:mod:`.pdu`, :mod:`.codec`, :mod:`.tlv`, :mod:`.framer`), statuses,
receipts, concatenation, the ESME session and :class:`~.channel.SmppChannel`."""
