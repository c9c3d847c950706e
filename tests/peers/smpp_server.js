// A third-party SMPP 3.4 server for jingxin's interop tests, built on the npm `smpp`
// package (not our code). It binds any ESME, answers submit_sm with message ids, sends a
// delivery receipt (text + TLVs) for each submit that asks for one, answers enquire_link
// and unbind. Usage: node smpp_server.js PORT   (prints "listening PORT" when ready)
'use strict';
const smpp = require('smpp');

const port = parseInt(process.argv[2] || '2775', 10);
let nextId = 1;

function yymmddhhmm(d) {
  const p = (n) => String(n).padStart(2, '0');
  return p(d.getFullYear() % 100) + p(d.getMonth() + 1) + p(d.getDate()) + p(d.getHours()) + p(d.getMinutes());
}

const server = smpp.createServer({ debug: false }, (session) => {
  session.on('error', () => {});
  const bind = (pdu) => {
    session.send(pdu.response({ system_id: 'npm-smpp' }));
  };
  session.on('bind_transceiver', bind);
  session.on('bind_transmitter', bind);
  session.on('bind_receiver', bind);
  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('unbind', (pdu) => {
    session.send(pdu.response());
    session.close();
  });
  session.on('submit_sm', (pdu) => {
    const id = 'npm' + (nextId++).toString(16).padStart(8, '0');
    session.send(pdu.response({ message_id: id }));
    if ((pdu.registered_delivery & 3) === 0) return;
    const now = yymmddhhmm(new Date());
    setTimeout(() => {
      session.deliver_sm({
        source_addr: pdu.destination_addr,
        destination_addr: pdu.source_addr,
        esm_class: 4,
        short_message: `id:${id} sub:001 dlvrd:001 submit date:${now} done date:${now} stat:DELIVRD err:000 text:`,
        receipted_message_id: id,
        message_state: 2,
      });
    }, 20);
  });
});

server.listen(port, '127.0.0.1', () => {
  console.log('listening ' + port);
});
process.on('SIGTERM', () => process.exit(0));
