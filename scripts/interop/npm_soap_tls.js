// The HTTPS door through the npm package `soap` (node-soap) with an OCES2 client certificate:
// soap.ClientSSLSecurity(key, cert, ca) on the calls, and an https.Agent with the same
// certificate for loading the WSDL (wsdl_options.httpsAgent: node-soap fetches the WSDL
// before any security is set).
//
//     node npm_soap_tls.js BASE_URL CERT_DIR EXCHANGE_LOG
//
// Run by scripts/interop.sh (section https_door) with NODE_PATH=.interop/node/node_modules,
// against `vos-converter serve --tls-cert ... --client-ca ... --agreements ...` (identity
// certificate) at BASE_URL (https://127.0.0.1:PORT), whose CA and agreements are the
// `vos-converter dev-certs` set in CERT_DIR. The certificate is akasse-12.pem (OCES2,
// CVR 22222222, its agreement: 2:12):
//   2:12  PersonStatusService GetVariablePersonStatus 0101701111 (a member of a-kasse 12):
//         answered, over the SOAP 1.1 and the SOAP 1.2 port;
//   2:34  (another a-kasse) and 1:101 (a jobcenter): Client/Sender fault ErrorCode 900511;
//   without the client certificate node-soap cannot even load the WSDL.
// Each exchange is appended to EXCHANGE_LOG.
//
// Exit status 0 when every check holds; each check prints one line.
'use strict';

const fs = require('fs');
const https = require('https');
const soap = require('soap');
const {
  failures, CheckFailed, check, step, faultErrors, metadataHeader, logExchanges,
} = require('./soap_common');

const PERSON = '0101701111';
const NOT_IN_AGREEMENT = 900511;

function header(type, code) {
  return metadataHeader(type, code, 'npm-soap-tls');
}

async function main() {
  const [base, certDir, logPath] = process.argv.slice(2);
  if (!base || !certDir || !logPath) {
    console.error('usage: node npm_soap_tls.js BASE_URL CERT_DIR EXCHANGE_LOG');
    process.exit(2);
  }
  fs.writeFileSync(logPath, '');
  const endpoint = `${base.replace(/\/$/, '')}/PersonStatusService/20`;
  const file = (name) => `${certDir}/${name}`;
  const version = require('soap/package.json').version;
  console.log(`  soap ${version} (node ${process.version}), WSDL ${endpoint}?wsdl, akasse-12.pem (OCES2)`);

  await step('no client certificate: node-soap cannot load the WSDL', async () => {
    const agent = new https.Agent({ ca: fs.readFileSync(file('ca.pem')) });
    try {
      await soap.createClientAsync(`${endpoint}?wsdl`, { wsdl_options: { httpsAgent: agent } });
    } catch (err) {
      const what = err.code || err.message;
      check(!(err.response && err.response.status), `an HTTP answer (${err.response && err.response.status}), expected a TLS failure`);
      // The server's alert (TLS 1.3: after the handshake, at the first read), or a reset; not
      // the client refusing the server's certificate.
      check(/ALERT/.test(what) || what === 'ECONNRESET', `${what}: not a refusal by the server`);
      return `${what}`;
    }
    throw new CheckFailed('the WSDL loaded without a client certificate');
  });

  const ports = [
    ['PersonStatusServiceSoap11', {}],
    ['PersonStatusServiceSoap12', { forceSoap12Headers: true }],
  ];
  for (const [port, options] of ports) {
    const soap12 = port.endsWith('Soap12');
    let client;
    const loaded = await step(`${port}: createClientAsync with akasse-12.pem`, async () => {
      const agent = new https.Agent({
        key: fs.readFileSync(file('akasse-12-key.pem')),
        cert: fs.readFileSync(file('akasse-12.pem')),
        ca: fs.readFileSync(file('ca.pem')),
      });
      client = await soap.createClientAsync(`${endpoint}?wsdl`, { ...options, wsdl_options: { httpsAgent: agent } });
      client.setSecurity(new soap.ClientSSLSecurity(file('akasse-12-key.pem'), file('akasse-12.pem'), file('ca.pem')));
      const location = client.wsdl.services.PersonStatusService.ports[port].location;
      check(location === endpoint, `address ${location}, expected ${endpoint}`);
      return `address ${location}`;
    });
    if (!loaded) continue;
    const setLabel = logExchanges(client, logPath);
    const methods = client.PersonStatusService[port];
    const call = (args) => new Promise((resolve, reject) => {
      methods.GetVariablePersonStatus(args, (err, result, rawResponse) => {
        if (err) reject(err);
        else resolve([result, rawResponse]);
      });
    });

    await step(`${port}: akasse-12.pem as 2:12, GetVariablePersonStatus ${PERSON}`, async () => {
      setLabel(`${port} 2:12`);
      client.clearSoapHeaders();
      client.addSoapHeader(header(2, '12'));
      const [result, raw] = await call({ PersonCivilRegistrationIdentifier: PERSON });
      check(result && result.PersonStatus, `no PersonStatus in the answer: ${raw}`);
      check(result.PersonStatus.PersonCivilRegistrationIdentifier === PERSON,
        `PersonCivilRegistrationIdentifier ${JSON.stringify(result.PersonStatus.PersonCivilRegistrationIdentifier)}`);
      return 'answered';
    });

    for (const [type, code, who] of [[2, '34', 'another a-kasse'], [1, '101', 'a jobcenter']]) {
      await step(`${port}: akasse-12.pem claiming ${type}:${code} (${who}) -> ${NOT_IN_AGREEMENT}`, async () => {
        setLabel(`${port} ${type}:${code}`);
        client.clearSoapHeaders();
        client.addSoapHeader(header(type, code));
        let result;
        try {
          [result] = await call({ PersonCivilRegistrationIdentifier: PERSON });
        } catch (err) {
          const { fault, errors } = faultErrors(err);
          check(errors[0].code === NOT_IN_AGREEMENT,
            `ErrorCode ${errors[0].code} (${errors[0].text}), expected ${NOT_IN_AGREEMENT}`);
          const side = String(soap12 ? fault.Code && fault.Code.Value : fault.faultcode).split(':').pop();
          check(side === (soap12 ? 'Sender' : 'Client'), `fault code ${side}`);
          const status = soap12 ? 400 : 500;
          check(err.response && err.response.status === status,
            `HTTP ${err.response && err.response.status}, expected ${status}`);
          return `Fault ${errors[0].code} "${errors[0].text}"`;
        }
        throw new CheckFailed(`expected a fault with ErrorCode ${NOT_IN_AGREEMENT}, got ${JSON.stringify(result)}`);
      });
    }
  }

  if (failures.length) {
    console.log(`  npm soap tls: ${failures.length} check(s) failed (exchanges in ${logPath})`);
    process.exit(1);
  }
  console.log('  npm soap tls: every check passed');
}

main().catch((e) => {
  console.log(`  FAIL  ${e.stack || e}`);
  process.exit(1);
});
