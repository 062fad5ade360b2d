// What the npm soap (node-soap) scripts of scripts/interop.sh share: the check runner, the
// dfdg:ServiceFault reader, the dfdg:RequestUserMetadata header and the exchange log.
// Required by npm_soap_prs.js and npm_soap_tls.js as require('./soap_common').
'use strict';

const fs = require('fs');

const COMMON = 'urn:dk:star:dfdg:common:1';

// The failed checks of this run, one line each (step appends; the scripts' main reads it).
const failures = [];

class CheckFailed extends Error {}

function check(cond, msg) {
  if (!cond) throw new CheckFailed(msg);
}

async function step(name, fn) {
  try {
    const detail = await fn();
    console.log(`  ok    ${name}${detail ? `: ${detail}` : ''}`);
    return true;
  } catch (e) {
    const msg = e instanceof CheckFailed ? e.message : `${e.name}: ${e.message}`;
    console.log(`  FAIL  ${name}: ${msg}`);
    if (!(e instanceof CheckFailed)) console.log(e.stack);
    failures.push(`${name}: ${msg}`);
    return false;
  }
}

// The dfdg:ServiceFault errors of a node-soap fault: [{code, text}], from the parsed fault
// (err.root) with a fallback to the raw body, so that a fault node-soap cannot map is still
// reported with what it says.
function faultErrors(err) {
  const fault = err && err.root && err.root.Envelope && err.root.Envelope.Body &&
    err.root.Envelope.Body.Fault;
  check(fault, `not a SOAP fault: ${err && err.message}; body ${err && err.body}`);
  // SOAP 1.1: detail; SOAP 1.2: Detail.
  const detail = fault.detail || fault.Detail;
  check(detail && detail.ServiceFault, `the fault has no ServiceFault detail: ${JSON.stringify(fault)}`);
  let errors = detail.ServiceFault.Error;
  check(errors, `the ServiceFault has no Error: ${JSON.stringify(detail)}`);
  if (!Array.isArray(errors)) errors = [errors];
  return {
    fault,
    errors: errors.map((e) => ({ code: Number(e.ErrorCode), text: e.ErrorText })),
  };
}

// dfdg:RequestUserMetadata as an XML string, for client.addSoapHeader.
function metadataHeader(type, code, user) {
  return `<dfdg:RequestUserMetadata xmlns:dfdg="${COMMON}"><dfdg:OrganisationType>${type}</dfdg:OrganisationType>` +
    `<dfdg:OrganisationCode>${code}</dfdg:OrganisationCode>` +
    `<dfdg:UserIdentifier>${user}</dfdg:UserIdentifier></dfdg:RequestUserMetadata>`;
}

// Appends every exchange of client to logPath, each under the label last set; returns the
// setter of the label.
function logExchanges(client, logPath) {
  let label = '';
  client.on('request', (xml) => fs.appendFileSync(logPath, `\n===== ${label}\n--- request\n${xml}\n`));
  client.on('response', (body, response) =>
    fs.appendFileSync(logPath, `--- HTTP ${response && response.status}\n${body}\n`));
  return (l) => { label = l; };
}

module.exports = { COMMON, failures, CheckFailed, check, step, faultErrors, metadataHeader, logExchanges };
