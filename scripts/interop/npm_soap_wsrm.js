// The legacy WSRM pull queue (WsrmService v3, WsrmMessageService v10) through the npm package
// `soap` (node-soap), a real third-party SOAP client, as Jobcenter 101 polling its queue, over
// the SOAP 1.1 ports (client.<Operation>Async, node-soap's default port) and the SOAP 1.2
// ports (forceSoap12Headers, client.<Service>.<Port>.<Operation>).
//
//     node npm_soap_wsrm.js CONVERTER_URL EXCHANGE_LOG
//
// Run by scripts/interop.sh (section run_wsrm, after zeep_wsrm.py) with
// NODE_PATH=.interop/node/node_modules, against the converter start_converter started (dev
// mode, WSRM subscribers 1:101 and 2:12). node-soap loads the WSDLs the converter SERVES
// (PersonRegistrationService/9, WsrmService/3, WsrmMessageService/10, each ?wsdl); the
// dfdg:RequestUserMetadata header is added with client.addSoapHeader as an XML string. Each
// exchange is appended to EXCHANGE_LOG.
//
// Per port, independent of what earlier sections left (the person 0101701111 of
// mappings/dev-seed.toml: municipality 101, a-kasse 12, not enrolled):
//   - prep: a contact group created and ended through PRS (rule 5: it closes whatever contact
//     group was open, so that the registration below closes nothing), then Jobcenter 101's
//     queue drained (CreateSequence, each inventory entry's operation, TerminateSequence)
//     until the prep's messages have come and the inventory is empty;
//   - CreateContactGroup type 1 through PRS;
//   - CreateSequence (CloseSequence and again while not there, at most 10 s): the inventory is
//     exactly GetContactGroupVersion5 1 and GetContactGroupVersion4 1, at the converter's
//     WsrmMessageService/10 address;
//   - GetContactGroupVersion5: the contact group PRS answered, type 1, start and event time as
//     sent (the start a Danish midnight with the Danish offset), ChangeType Created,
//     RegisteringAuthority 1/101, RegisteringUser, a lower-case UUID MessageIdentifier;
//     GetContactGroupVersion4: the same without RegisteringAuthority and RegisteringUser, its
//     own MessageIdentifier;
//   - TerminateSequence: the id is fault 900530 from then on, and a new CreateSequence has an
//     empty inventory.
//
// Exit status 0 when every check holds; each check prints one line.
'use strict';

const fs = require('fs');
const soap = require('soap');
const {
  failures, CheckFailed, check, step, faultErrors, metadataHeader, logExchanges,
} = require('./soap_common');

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const PERSON = '0101701111';
const USER = 'npm-soap-wsrm';
const V5 = 'GetContactGroupVersion5';
const V4 = 'GetContactGroupVersion4';
const COLLECTION = {
  GetContactGroupVersion5: ['ContactGroupMessageCollection', 'ContactGroupMessage'],
  GetContactGroupVersion4: ['ContactGroupMessageCollection', 'ContactGroupMessage'],
  GetPersonCategoryVersion1: ['PersonCategoryMessageCollection', 'PersonCategoryMessage'],
  GetCprChanged: ['CprChangedMessageCollection', 'CprChangedMessage'],
};
const UNKNOWN_SEQUENCE = 900530;
const POLL_MS = 10000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// node-soap gives one item as an object, several as an array, none as null or ''.
function asArray(x) {
  if (x === undefined || x === null || x === '') return [];
  return Array.isArray(x) ? x : [x];
}

// A date in Denmark (Europe/Copenhagen) as YYYY-MM-DD, and the hour and minute there.
function danish(date) {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone: 'Europe/Copenhagen', year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
  }).formatToParts(date);
  const get = (type) => parts.find((p) => p.type === type).value;
  return { day: `${get('year')}-${get('month')}-${get('day')}`, time: `${get('hour')}:${get('minute')}` };
}

function addDays(isoDate, days) {
  const d = new Date(`${isoDate}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

function asDate(v) {
  return v instanceof Date ? v : new Date(v);
}

// Calls an operation of one port: [result, rawResponse, soapHeader, rawRequest].
function caller(client, service, port) {
  if (port.endsWith('Soap11')) {
    return (operation, args) => client[`${operation}Async`](args);
  }
  const methods = client[service][port];
  return (operation, args) => new Promise((resolve, reject) => {
    methods[operation](args, (err, result, rawResponse, soapHeader, rawRequest) => {
      if (err) reject(err);
      else resolve([result, rawResponse, soapHeader, rawRequest]);
    });
  });
}

async function loadClient(base, service, version, suffix, options) {
  const endpoint = `${base}/${service}/${version}`;
  const client = await soap.createClientAsync(`${endpoint}?wsdl`, options);
  const port = `${service}${suffix}`;
  const ports = client.wsdl.services[service].ports;
  check(ports[port], `no port ${port}: ${Object.keys(ports)}`);
  check(ports[port].location === endpoint, `${port}: address ${ports[port].location}, expected ${endpoint}`);
  client.addSoapHeader(metadataHeader(1, '101', USER));
  return { client, port, call: caller(client, service, port) };
}

// The flow over one pair of ports (index 0: SOAP 1.1, 1: SOAP 1.2).
async function runPorts(base, suffix, index, logPath) {
  const soap12 = suffix === 'Soap12';
  const options = soap12 ? { forceSoap12Headers: true } : {};
  const name = (what) => `${suffix} ${what}`;
  const messageEndpoint = `${base}/WsrmMessageService/10`;
  // Days: after zeep_wsrm.py's (its last start is 12 days back), the SOAP 1.2 run after the
  // SOAP 1.1 one (rule 5), no end date after today (rule 1): 8 and 7, then 4 and 3 days back.
  const today = danish(new Date()).day;
  const back = 8 - 4 * index;
  const prep = addDays(today, -back);
  const start = addDays(today, -back + 1);

  let prs; let ws; let wms;
  const loaded = await step(name('createClientAsync of PRS/9, WsrmService/3, WsrmMessageService/10 (?wsdl)'), async () => {
    prs = await loadClient(base, 'PersonRegistrationService', 9, suffix, options);
    ws = await loadClient(base, 'WsrmService', 3, suffix, options);
    wms = await loadClient(base, 'WsrmMessageService', 10, suffix, options);
    const ops = Object.keys(wms.client.describe().WsrmMessageService[wms.port]).sort();
    check(ops.length === 4, `WsrmMessageService operations ${ops}`);
    return `ports ${prs.port}, ${ws.port}, ${wms.port}`;
  });
  if (!loaded) return;
  const labels = [prs, ws, wms].map((c) => logExchanges(c.client, logPath));
  const setLabel = (l) => labels.forEach((f) => f(`${suffix} ${l}`));
  const endpoints = new Set();

  async function createSequence(label) {
    setLabel(`${label} CreateSequence`);
    const [result, raw] = await ws.call('CreateSequence', {});
    const seq = result && result.SequenceIdentifier;
    check(typeof seq === 'string' && UUID_RE.test(seq), `SequenceIdentifier ${JSON.stringify(seq)}; response ${raw}`);
    const inventory = {};
    for (const e of asArray(result.InventoryCollection && result.InventoryCollection.Inventory)) {
      check(!(e.ServiceName in inventory), `the inventory names ${e.ServiceName} twice`);
      inventory[e.ServiceName] = Number(e.MessageCount);
      endpoints.add(e.ServiceEndpoint);
    }
    return [seq, inventory];
  }

  async function messages(kind, seq, label) {
    setLabel(`${label} ${kind}`);
    const [result, raw] = await wms.call(kind, { SequenceIdentifier: seq });
    const [collection, item] = COLLECTION[kind];
    return [asArray(result && result[collection] && result[collection][item]), raw];
  }

  async function finishSequence(operation, seq, label) {
    setLabel(`${label} ${operation}`);
    await ws.call(operation, { SequenceIdentifier: seq });
  }

  // Drains until empty and every "kind id ChangeType" in waitFor was seen.
  async function drain(waitFor) {
    const seen = new Set();
    const deadline = Date.now() + POLL_MS;
    let n = 0;
    for (let rounds = 1; ; rounds += 1) {
      const [seq, inventory] = await createSequence('drain');
      for (const [kind, count] of Object.entries(inventory)) {
        const [got] = await messages(kind, seq, 'drain');
        check(got.length === count, `${kind}: ${got.length} messages, the inventory said ${count}`);
        for (const m of got) {
          const reg = m.ContactGroup || m.PersonCategory || {};
          seen.add(`${kind} ${reg.ContactGroupIdentifier || reg.PersonCategoryIdentifier} ${m.ChangeType}`);
        }
        n += count;
      }
      await finishSequence('TerminateSequence', seq, 'drain');
      const missing = waitFor.filter((w) => !seen.has(w));
      if (Object.keys(inventory).length === 0 && missing.length === 0) return `${n} messages in ${rounds} sequences`;
      check(Date.now() < deadline, `after ${POLL_MS / 1000} s the queue still has messages or never got ${missing}`);
      if (Object.keys(inventory).length === 0) await sleep(200);
    }
  }

  const cg = (type, day, event) => ({
    ContactGroupTypeIdentifier: type, ContactGroupStartTime: `${day}T00:00:00`, ContactGroupEventTime: event,
  });

  let prepId = null;
  const prepared = await step(name(`prep: Jobcenter 101 creates and ends a contact group of ${PERSON} from ${prep} (PRS)`), async () => {
    setLabel('prep CreateContactGroup');
    const body = cg(1, prep, `${prep}T07:00:00Z`);
    const [created] = await prs.call('CreateContactGroup', { PersonCivilRegistrationIdentifier: PERSON, ContactGroup: body });
    prepId = created && created.ContactGroupIdentifier;
    check(typeof prepId === 'string' && UUID_RE.test(prepId), `ContactGroupIdentifier ${JSON.stringify(created)}`);
    setLabel('prep UpdateContactGroup');
    const [updated] = await prs.call('UpdateContactGroup', {
      PersonCivilRegistrationIdentifier: PERSON,
      ContactGroup: {
        ContactGroupIdentifier: prepId, ContactGroupTypeIdentifier: 1, ContactGroupStartTime: body.ContactGroupStartTime,
        ContactGroupEndTime: `${prep}T00:00:00`, ContactGroupEventTime: body.ContactGroupEventTime,
      },
    });
    check(updated && updated.ContactGroupIdentifier === prepId, `UpdateContactGroup answered ${JSON.stringify(updated)}`);
    return `${prepId}, ended ${prep}`;
  });
  if (!prepared) return;
  const drained = await step(name('drain Jobcenter 1:101\'s queue'), () =>
    drain([`${V5} ${prepId} Updated`, `${V4} ${prepId} Updated`]));
  if (!drained) return;

  let id = null;
  const event = `${start}T08:30:00Z`;
  const created = await step(name(`CreateContactGroup type 1 from ${start} (PRS)`), async () => {
    setLabel('CreateContactGroup');
    const [result] = await prs.call('CreateContactGroup', { PersonCivilRegistrationIdentifier: PERSON, ContactGroup: cg(1, start, event) });
    id = result && result.ContactGroupIdentifier;
    check(typeof id === 'string' && UUID_RE.test(id), `ContactGroupIdentifier ${JSON.stringify(result)}`);
    return `ContactGroupIdentifier ${id}`;
  });
  if (!created) return;

  let seq = null;
  const polled = await step(name('CreateSequence: the inventory is GetContactGroupVersion5 1, GetContactGroupVersion4 1'), async () => {
    const t0 = Date.now();
    for (let tries = 1; ; tries += 1) {
      const [s, inventory] = await createSequence('poll');
      if ((inventory[V5] || 0) >= 1 && (inventory[V4] || 0) >= 1) {
        seq = s;
        const want = { [V5]: 1, [V4]: 1 };
        check(Object.keys(inventory).length === 2 && inventory[V5] === 1 && inventory[V4] === 1,
          `inventory ${JSON.stringify(inventory)}, expected exactly ${JSON.stringify(want)}`);
        return `${JSON.stringify(inventory)} after ${tries} poll(s), ${Date.now() - t0} ms`;
      }
      await finishSequence('CloseSequence', s, 'poll');
      check(Date.now() - t0 < POLL_MS, `after ${POLL_MS / 1000} s the inventory is ${JSON.stringify(inventory)}`);
      await sleep(200);
    }
  });
  if (!polled) return;

  await step(name('the inventory\'s ServiceEndpoint is the converter\'s WsrmMessageService/10'), async () => {
    const got = [...endpoints];
    check(got.length === 1 && got[0] === messageEndpoint,
      `ServiceEndpoint ${JSON.stringify(got)}, expected the WsrmMessageService address ${JSON.stringify(messageEndpoint)}`);
    return messageEndpoint;
  });

  const ids = [];
  function checkMessage(m, raw, v5) {
    const md = m.WSRMMetadata || {};
    check(typeof md.MessageIdentifier === 'string' && UUID_RE.test(md.MessageIdentifier),
      `MessageIdentifier ${JSON.stringify(md.MessageIdentifier)} is not a lower-case UUID`);
    ids.push(md.MessageIdentifier);
    if (v5) {
      const ra = md.RegisteringAuthority || {};
      check(String(ra.OrganisationType) === '1' && String(ra.OrganisationCode) === '101',
        `RegisteringAuthority ${JSON.stringify(ra)}, expected 1/101`);
      check(md.RegisteringUser && md.RegisteringUser.UserIdentifier === USER,
        `RegisteringUser ${JSON.stringify(md.RegisteringUser)}, expected ${USER}`);
    } else {
      check(!('RegisteringAuthority' in md) && !('RegisteringUser' in md) && !/RegisteringAuthority|RegisteringUser/.test(raw),
        `Version 4 has RegisteringAuthority or RegisteringUser: ${JSON.stringify(md)}`);
    }
    check(m.PersonCivilRegistrationIdentifier === PERSON, 'PersonCivilRegistrationIdentifier is not the person registered');
    const c = m.ContactGroup || {};
    check(c.ContactGroupIdentifier === id, `ContactGroupIdentifier ${c.ContactGroupIdentifier}, expected ${id}`);
    check(String(c.ContactGroupTypeIdentifier) === '1', `ContactGroupTypeIdentifier ${c.ContactGroupTypeIdentifier}, expected 1`);
    const st = danish(asDate(c.ContactGroupStartTime));
    check(st.day === start && st.time === '00:00', `ContactGroupStartTime ${JSON.stringify(c.ContactGroupStartTime)} is not Danish midnight of ${start}`);
    check(new RegExp(`<ContactGroupStartTime>${start}T00:00:00\\+0[12]:00</ContactGroupStartTime>`).test(raw),
      `the raw ContactGroupStartTime is not ${start}T00:00:00 with a Danish offset`);
    check(c.ContactGroupEndTime === undefined || c.ContactGroupEndTime === null,
      `ContactGroupEndTime ${JSON.stringify(c.ContactGroupEndTime)}, expected none`);
    check(asDate(c.ContactGroupEventTime).getTime() === Date.parse(event),
      `ContactGroupEventTime ${JSON.stringify(c.ContactGroupEventTime)}, expected ${event}`);
    check(m.ChangeType === 'Created', `ChangeType ${m.ChangeType}, expected Created`);
  }

  await step(name('GetContactGroupVersion5: the contact group, Created, RegisteringAuthority 1/101'), async () => {
    const [got, raw] = await messages(V5, seq, 'read');
    check(got.length === 1, `${got.length} messages, expected 1; response ${raw}`);
    checkMessage(got[0], raw, true);
    return `${id} Created, MessageIdentifier ${got[0].WSRMMetadata.MessageIdentifier}`;
  });
  await step(name('GetContactGroupVersion4: the contact group, Created, no RegisteringAuthority'), async () => {
    const [got, raw] = await messages(V4, seq, 'read');
    check(got.length === 1, `${got.length} messages, expected 1; response ${raw}`);
    checkMessage(got[0], raw, false);
    check(new Set(ids).size === ids.length, `V5 and V4 share a MessageIdentifier: ${ids}`);
    return `${id} Created, MessageIdentifier ${got[0].WSRMMetadata.MessageIdentifier}`;
  });

  await step(name('TerminateSequence: then 900530 for its id, and an empty inventory'), async () => {
    await finishSequence('TerminateSequence', seq, 'read');
    setLabel('TerminateSequence again');
    let result;
    try {
      [result] = await ws.call('TerminateSequence', { SequenceIdentifier: seq });
    } catch (err) {
      const { fault, errors } = faultErrors(err);
      check(errors[0].code === UNKNOWN_SEQUENCE, `ErrorCode ${errors[0].code} (${errors[0].text}), expected ${UNKNOWN_SEQUENCE}`);
      const side = String(soap12 ? fault.Code && fault.Code.Value : fault.faultcode).split(':').pop();
      check(side === (soap12 ? 'Sender' : 'Client'), `fault code ${side}`);
      const status = soap12 ? 400 : 500;
      check(err.response && err.response.status === status, `HTTP ${err.response && err.response.status}, expected ${status}`);
      const [empty, inventory] = await createSequence('after terminate');
      check(Object.keys(inventory).length === 0, `inventory after TerminateSequence ${JSON.stringify(inventory)}, expected empty`);
      await finishSequence('TerminateSequence', empty, 'after terminate');
      return `TerminateSequence again -> Fault ${errors[0].code} "${errors[0].text}"; CreateSequence: empty inventory`;
    }
    throw new CheckFailed(`expected a fault with ErrorCode ${UNKNOWN_SEQUENCE}, got ${JSON.stringify(result)}`);
  });
}

async function main() {
  const [base, logPath] = process.argv.slice(2);
  if (!base || !logPath) {
    console.error('usage: node npm_soap_wsrm.js CONVERTER_URL EXCHANGE_LOG');
    process.exit(2);
  }
  fs.writeFileSync(logPath, '');
  const version = require('soap/package.json').version;
  console.log(`  soap ${version} (node ${process.version}), converter ${base}, Danish date today ${danish(new Date()).day}, person ${PERSON}`);
  await runPorts(base.replace(/\/$/, ''), 'Soap11', 0, logPath);
  await runPorts(base.replace(/\/$/, ''), 'Soap12', 1, logPath);
  if (failures.length) {
    console.log(`  npm soap wsrm: ${failures.length} check(s) failed (exchanges in ${logPath})`);
    process.exit(1);
  }
  console.log('  npm soap wsrm: every check passed');
}

main().catch((e) => {
  console.log(`  FAIL  ${e.stack || e}`);
  process.exit(1);
});
