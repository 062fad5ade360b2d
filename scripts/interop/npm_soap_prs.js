// PersonRegistrationService v9 through the npm package `soap` (node-soap), a real
// third-party SOAP client, over the SOAP 1.1 port (client.<Operation>Async, node-soap's
// default port) and the SOAP 1.2 port (forceSoap12Headers).
//
//     node npm_soap_prs.js ENDPOINT_URL EXCHANGE_LOG
//
// Run by scripts/interop.sh (section run_npm_soap) with NODE_PATH=.interop/node/node_modules
// (installed with npm ci from scripts/interop/package.json and package-lock.json), against a
// converter that `vos-converter serve` started with a fresh data directory. node-soap loads
// the WSDL the converter SERVES (ENDPOINT_URL?wsdl); the dfdg:RequestUserMetadata header is
// added with client.addSoapHeader, once as an object and once as an XML string. node-soap
// sends no WS-Addressing headers, so its creates take the converter's plain (non-idempotent)
// path. Each exchange is appended to EXCHANGE_LOG.
//
// The caller is STAR (OrganisationType 5), which may touch persons that are not in the person
// register, so the fictitious persons below are fresh and no other section's data interferes.
//
// Exit status 0 when every check holds; each check prints one line.
'use strict';

const fs = require('fs');
const soap = require('soap');
const {
  COMMON, failures, CheckFailed, check, step, faultErrors, metadataHeader, logExchanges,
} = require('./soap_common');

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// Fictitious persons not in the register, one per port.
const PERSONS = ['0301900301', '0301900302'];
const FUTURE_END = { code: 100028, text: 'Slutdato kan ikke være fremtidig' };

// Today's date in Denmark (Europe/Copenhagen) as YYYY-MM-DD, and a day later.
function danishToday() {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone: 'Europe/Copenhagen', year: 'numeric', month: '2-digit', day: '2-digit',
  }).formatToParts(new Date());
  const get = (type) => parts.find((p) => p.type === type).value;
  return `${get('year')}-${get('month')}-${get('day')}`;
}

function addDays(isoDate, days) {
  const d = new Date(`${isoDate}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

// Calls operation on a port. Returns [result, rawResponse, soapHeader, rawRequest] as
// client.<Operation>Async does; the SOAP 1.1 port goes through exactly that method, the
// SOAP 1.2 port through client.<Service>.<Port>.<Operation>, node-soap's per-port form.
function caller(client, port) {
  if (port === 'PersonRegistrationServiceSoap11') {
    return (operation, args) => client[`${operation}Async`](args);
  }
  const methods = client.PersonRegistrationService[port];
  return (operation, args) => new Promise((resolve, reject) => {
    methods[operation](args, (err, result, rawResponse, soapHeader, rawRequest) => {
      if (err) reject(err);
      else resolve([result, rawResponse, soapHeader, rawRequest]);
    });
  });
}

// The flow over one port: CreateContactGroup, UpdateContactGroup with an end date tomorrow
// (fault 100028), the same with today (the same id), CreatePersonCategoryAndInterview (fault
// 900510).
async function runPort(client, port, person, setLabel) {
  const soap12 = port.endsWith('Soap12');
  const call = caller(client, port);
  const name = (what) => `${port} ${what}`;
  const sideOf = (fault) => String(soap12 ? fault.Code && fault.Code.Value : fault.faultcode).split(':').pop();
  const stringOf = (fault) => {
    if (!soap12) return fault.faultstring;
    const text = fault.Reason && fault.Reason.Text;
    return text && typeof text === 'object' ? text.$value : text;
  };

  client.clearSoapHeaders();
  client.addSoapHeader(
    { RequestUserMetadata: { OrganisationType: 5, OrganisationCode: '12345678', UserIdentifier: 'npm-soap' } },
    '', 'dfdg', COMMON,
  );

  const start = '2025-03-03T00:00:00'; // offset-less: Danish local time
  const event = '2025-03-03T09:15:00+01:00';
  let id = null;

  await step(name('CreateContactGroup (header as an object)'), async () => {
    setLabel(name('CreateContactGroup'));
    const [result, rawResponse, , rawRequest] = await call('CreateContactGroup', {
      PersonCivilRegistrationIdentifier: person,
      ContactGroup: { ContactGroupTypeIdentifier: 1, ContactGroupStartTime: start, ContactGroupEventTime: event },
    });
    check(rawRequest.includes('RequestUserMetadata'), 'node-soap sent no RequestUserMetadata header');
    const envelope = soap12 ? 'http://www.w3.org/2003/05/soap-envelope' : 'http://schemas.xmlsoap.org/soap/envelope/';
    check(rawRequest.includes(envelope), `node-soap did not send a ${soap12 ? 'SOAP 1.2' : 'SOAP 1.1'} envelope`);
    check(result && typeof result.ContactGroupIdentifier === 'string' && UUID_RE.test(result.ContactGroupIdentifier),
      `ContactGroupIdentifier ${JSON.stringify(result)} is not a lower-case UUID; response ${rawResponse}`);
    id = result.ContactGroupIdentifier;
    return `ContactGroupIdentifier ${id}`;
  });

  // From here on the header is an XML string (how many KSS integrations add it).
  client.clearSoapHeaders();
  client.addSoapHeader(metadataHeader(5, '12345678', 'npm-soap'));

  const update = (end) => call('UpdateContactGroup', {
    PersonCivilRegistrationIdentifier: person,
    ContactGroup: {
      ContactGroupIdentifier: id, ContactGroupTypeIdentifier: 1, ContactGroupStartTime: start,
      ContactGroupEndTime: end, ContactGroupEventTime: event,
    },
  });

  if (id) {
    await step(name('UpdateContactGroup, end date tomorrow -> 100028 (header as XML)'), async () => {
      setLabel(name('UpdateContactGroup end tomorrow'));
      const tomorrow = addDays(danishToday(), 1);
      let result;
      try {
        [result] = await update(`${tomorrow}T00:00:00`);
      } catch (err) {
        const { fault, errors } = faultErrors(err);
        check(errors[0].code === FUTURE_END.code, `ErrorCode ${errors[0].code} (${errors[0].text}), expected ${FUTURE_END.code}`);
        check(errors[0].text === FUTURE_END.text, `ErrorText ${JSON.stringify(errors[0].text)}`);
        check(stringOf(fault) === FUTURE_END.text, `fault string ${JSON.stringify(stringOf(fault))}`);
        const side = soap12 ? 'Sender' : 'Client';
        check(sideOf(fault) === side, `fault code ${sideOf(fault)}, expected ${side}`);
        const status = soap12 ? 400 : 500;
        check(err.response && err.response.status === status,
          `HTTP ${err.response && err.response.status}, expected ${status}`);
        return `end ${tomorrow} -> Fault ${errors[0].code} "${errors[0].text}"`;
      }
      throw new CheckFailed(`expected a fault with ErrorCode 100028, got ${JSON.stringify(result)}`);
    });

    await step(name('UpdateContactGroup, same type/start/event, end date today'), async () => {
      setLabel(name('UpdateContactGroup end today'));
      const today = danishToday();
      const [result] = await update(`${today}T00:00:00`);
      check(result && result.ContactGroupIdentifier === id,
        `ContactGroupIdentifier ${JSON.stringify(result)}, expected ${id}`);
      return `end ${today} -> the same id`;
    });
  }

  await step(name('CreatePersonCategoryAndInterview -> 900510'), async () => {
    setLabel(name('CreatePersonCategoryAndInterview'));
    let result;
    try {
      [result] = await call('CreatePersonCategoryAndInterview', {
        PersonCivilRegistrationIdentifier: person,
        PersonCategory: { PersonCategoryTypeIdentifier: 2, PersonCategoryStartTime: start, PersonCategoryEventTime: event },
        Interview: { InterviewTime: '2025-03-04T10:00:00', InterviewTypeIdentifier: 1 },
      });
    } catch (err) {
      const { errors } = faultErrors(err);
      check(errors[0].code === 900510, `ErrorCode ${errors[0].code} (${errors[0].text}), expected 900510`);
      return `Fault 900510 "${errors[0].text}"`;
    }
    throw new CheckFailed(`expected a fault with ErrorCode 900510, got ${JSON.stringify(result)}`);
  });
}

async function main() {
  const [endpoint, logPath] = process.argv.slice(2);
  if (!endpoint || !logPath) {
    console.error('usage: node npm_soap_prs.js ENDPOINT_URL EXCHANGE_LOG');
    process.exit(2);
  }
  fs.writeFileSync(logPath, '');
  const version = require('soap/package.json').version;
  console.log(`  soap ${version} (node ${process.version}), WSDL ${endpoint}?wsdl, Danish date today ${danishToday()}`);

  // The SOAP 1.1 port is the service's first, which node-soap binds by default. For the
  // SOAP 1.2 port node-soap needs forceSoap12Headers (SOAP 1.2 envelope and content type).
  const clients = [
    ['PersonRegistrationServiceSoap11', {}, PERSONS[0]],
    ['PersonRegistrationServiceSoap12', { forceSoap12Headers: true }, PERSONS[1]],
  ];
  for (const [port, options, person] of clients) {
    let client;
    const loaded = await step(`${port} createClientAsync(${endpoint}?wsdl)`, async () => {
      client = await soap.createClientAsync(`${endpoint}?wsdl`, options);
      const ports = client.wsdl.services.PersonRegistrationService.ports;
      check(ports[port], `no port ${port}: ${Object.keys(ports)}`);
      const location = ports[port].location;
      check(location === endpoint, `address ${location}, expected ${endpoint}`);
      const ops = Object.keys(client.describe().PersonRegistrationService[port]).sort();
      check(ops.length === 5, `operations ${ops}`);
      return `address ${location}, ${ops.length} operations`;
    });
    if (!loaded) continue;
    await runPort(client, port, person, logExchanges(client, logPath));
  }

  if (failures.length) {
    console.log(`  npm soap: ${failures.length} check(s) failed (exchanges in ${logPath})`);
    process.exit(1);
  }
  console.log('  npm soap: every check passed');
}

main().catch((e) => {
  console.log(`  FAIL  ${e.stack || e}`);
  process.exit(1);
});
