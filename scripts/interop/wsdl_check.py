"""Checks the WSDL that the converter serves, with xmlschema (PyPI) and lxml.

    wsdl_check.py WSDL_FILE ENDPOINT_URL OUT_DIR

Run by scripts/interop.sh (section validate_wsdl) in the .interop venv. WSDL_FILE is the
document as served at ENDPOINT_URL?wsdl. It

  1. extracts the inline xs:schema elements of wsdl:types into OUT_DIR/schema-N.xsd, each
     with the namespace declarations in scope in the WSDL, and an xs:import of a namespace
     that another inline schema defines given that schema's file as its schemaLocation
     (inside the WSDL such an import has none: the schemas are siblings);
  2. compiles every extracted schema with xmlschema (XSD 1.0), and validates sample
     instances (a request of every operation, the header, a fault detail) against them;
     the samples go to OUT_DIR too, so that xmllint --schema can check the same pairs
     (listed in OUT_DIR/xmllint-pairs.txt as "schema sample" lines);
  3. validates the WSDL against the WSDL 1.1 schema that xmlschema ships (wsdl.xsd, with its
     SOAP 1.1 binding schema wsdl-soap.xsd, so soap:* extension elements are checked too),
     and reads it with xmlschema's WSDL 1.1 model (which knows SOAP 1.1 bindings only);
  4. asserts that soap:address and soap12:address both give ENDPOINT_URL, and that every
     operation's soapAction is <targetNamespace>/<operation>.

Exit status 0 when everything holds; every problem is printed.
"""

import os
import sys

import xmlschema
from lxml import etree
from xmlschema.extras.wsdl import Wsdl11Document

WSDL = "http://schemas.xmlsoap.org/wsdl/"
SOAP11 = "http://schemas.xmlsoap.org/wsdl/soap/"
SOAP12 = "http://schemas.xmlsoap.org/wsdl/soap12/"
XS = "http://www.w3.org/2001/XMLSchema"
COMMON = "urn:dk:star:dfdg:common:1"
PRS = "urn:dk:star:dfdg:PersonRegistrationService:9"
OPERATIONS = [
    "CreateContactGroup",
    "UpdateContactGroup",
    "CreatePersonCategory",
    "UpdatePersonCategory",
    "CreatePersonCategoryAndInterview",
]

problems = []


def ok(msg):
    print(f"  ok    {msg}")


def problem(msg):
    print(f"  FAIL  {msg}")
    problems.append(msg)


# Sample instances: one per operation request, the header and a fault detail. Values as a
# KSS would send them (an offset-less time is Danish local time).
SAMPLES = {
    COMMON: {
        "RequestUserMetadata": f"""<d:RequestUserMetadata xmlns:d="{COMMON}">
  <d:OrganisationType>1</d:OrganisationType><d:OrganisationCode>101</d:OrganisationCode>
  <d:UserIdentifier>ab12</d:UserIdentifier></d:RequestUserMetadata>""",
        "ServiceFault": f"""<d:ServiceFault xmlns:d="{COMMON}"><d:Error>
  <d:ErrorCode>100028</d:ErrorCode><d:ErrorText>Slutdato kan ikke være fremtidig</d:ErrorText>
  </d:Error></d:ServiceFault>""",
    },
    PRS: {
        "CreateContactGroupRequest": f"""<CreateContactGroupRequest xmlns="{PRS}">
  <PersonCivilRegistrationIdentifier>0101701111</PersonCivilRegistrationIdentifier>
  <ContactGroup><ContactGroupTypeIdentifier>1</ContactGroupTypeIdentifier>
  <ContactGroupStartTime>2025-01-06T00:00:00+01:00</ContactGroupStartTime>
  <ContactGroupEventTime>2025-01-06T09:30:00</ContactGroupEventTime></ContactGroup>
  </CreateContactGroupRequest>""",
        "UpdateContactGroupRequest": f"""<UpdateContactGroupRequest xmlns="{PRS}">
  <PersonCivilRegistrationIdentifier>0101701111</PersonCivilRegistrationIdentifier>
  <ContactGroup><ContactGroupIdentifier>0b7e3c5a-3f0e-5d7c-9a51-2f4a8c1d9e10</ContactGroupIdentifier>
  <ContactGroupTypeIdentifier>1</ContactGroupTypeIdentifier>
  <ContactGroupStartTime>2025-01-06T00:00:00+01:00</ContactGroupStartTime>
  <ContactGroupEndTime>2025-02-01T00:00:00</ContactGroupEndTime>
  <ContactGroupEventTime>2025-01-06T09:30:00</ContactGroupEventTime></ContactGroup>
  </UpdateContactGroupRequest>""",
        "CreatePersonCategoryRequest": f"""<CreatePersonCategoryRequest xmlns="{PRS}">
  <PersonCivilRegistrationIdentifier>0101701111</PersonCivilRegistrationIdentifier>
  <PersonCategory><PersonCategoryTypeIdentifier>2</PersonCategoryTypeIdentifier>
  <PersonCategoryStartTime>2024-07-01T00:00:00+02:00</PersonCategoryStartTime>
  <PersonCategoryEventTime>2024-07-01T10:00:00+02:00</PersonCategoryEventTime></PersonCategory>
  </CreatePersonCategoryRequest>""",
        "UpdatePersonCategoryRequest": f"""<UpdatePersonCategoryRequest xmlns="{PRS}">
  <PersonCivilRegistrationIdentifier>0101701111</PersonCivilRegistrationIdentifier>
  <PersonCategory><PersonCategoryIdentifier>0b7e3c5a-3f0e-5d7c-9a51-2f4a8c1d9e10</PersonCategoryIdentifier>
  <PersonCategoryTypeIdentifier>3</PersonCategoryTypeIdentifier>
  <PersonCategoryStartTime>2024-07-01T00:00:00+02:00</PersonCategoryStartTime>
  <PersonCategoryEndTime>2024-12-31T00:00:00+01:00</PersonCategoryEndTime>
  <PersonCategoryEventTime>2024-07-01T10:00:00+02:00</PersonCategoryEventTime></PersonCategory>
  </UpdatePersonCategoryRequest>""",
        "CreatePersonCategoryAndInterviewRequest": f"""<CreatePersonCategoryAndInterviewRequest xmlns="{PRS}">
  <PersonCivilRegistrationIdentifier>0101701111</PersonCivilRegistrationIdentifier>
  <PersonCategory><PersonCategoryTypeIdentifier>2</PersonCategoryTypeIdentifier>
  <PersonCategoryStartTime>2024-07-01T00:00:00+02:00</PersonCategoryStartTime>
  <PersonCategoryEventTime>2024-07-01T10:00:00+02:00</PersonCategoryEventTime></PersonCategory>
  <Interview><InterviewTime>2024-07-02T10:00:00</InterviewTime>
  <InterviewTypeIdentifier>1</InterviewTypeIdentifier></Interview>
  </CreatePersonCategoryAndInterviewRequest>""",
        "CreateContactGroupResponse": f"""<CreateContactGroupResponse xmlns="{PRS}">
  <ContactGroupIdentifier>0b7e3c5a-3f0e-5d7c-9a51-2f4a8c1d9e10</ContactGroupIdentifier>
  </CreateContactGroupResponse>""",
    },
}
# Instances that must NOT validate: the schema is not vacuous.
INVALID_SAMPLES = {
    PRS: {
        "CreateContactGroupRequest-bad-cpr": f"""<CreateContactGroupRequest xmlns="{PRS}">
  <PersonCivilRegistrationIdentifier>01017011</PersonCivilRegistrationIdentifier>
  <ContactGroup><ContactGroupTypeIdentifier>1</ContactGroupTypeIdentifier>
  <ContactGroupStartTime>2025-01-06T00:00:00+01:00</ContactGroupStartTime>
  <ContactGroupEventTime>2025-01-06T09:30:00</ContactGroupEventTime></ContactGroup>
  </CreateContactGroupRequest>""",
        "CreateContactGroupResponse-upper-case-uuid": f"""<CreateContactGroupResponse xmlns="{PRS}">
  <ContactGroupIdentifier>0B7E3C5A-3F0E-5D7C-9A51-2F4A8C1D9E10</ContactGroupIdentifier>
  </CreateContactGroupResponse>""",
    },
}


def extract_schemas(doc, out_dir):
    """{targetNamespace: path} of the inline schemas, written to out_dir."""
    schemas = doc.findall(f"{{{WSDL}}}types/{{{XS}}}schema")
    if not schemas:
        problem("no inline xs:schema in wsdl:types")
        return {}
    by_ns = {}
    for i, schema in enumerate(schemas, 1):
        tns = schema.get("targetNamespace")
        if tns in by_ns:
            problem(f"two inline schemas for namespace {tns}")
        by_ns[tns] = os.path.join(out_dir, f"schema-{i}.xsd")
    for schema in schemas:
        copy = etree.fromstring(etree.tostring(schema))  # keeps the in-scope namespaces
        for imp in copy.findall(f"{{{XS}}}import"):
            ns = imp.get("namespace")
            if imp.get("schemaLocation") is None and ns in by_ns:
                imp.set("schemaLocation", os.path.basename(by_ns[ns]))
        path = by_ns[schema.get("targetNamespace")]
        etree.ElementTree(copy).write(path, xml_declaration=True, encoding="UTF-8")
        ok(f"extracted the inline schema of {schema.get('targetNamespace')} -> {os.path.basename(path)}")
    return by_ns


def check_schemas(by_ns, out_dir):
    pairs = []
    for ns, path in by_ns.items():
        try:
            schema = xmlschema.XMLSchema10(path)
        except (xmlschema.XMLSchemaException, etree.XMLSyntaxError) as e:
            problem(f"the inline schema of {ns} does not compile: {e}")
            continue
        ok(f"xmlschema compiles the inline schema of {ns}: "
           f"{len(schema.elements)} elements, {len(schema.types)} types")
        for name, text in SAMPLES.get(ns, {}).items():
            sample = os.path.join(out_dir, f"sample-{name}.xml")
            with open(sample, "w", encoding="utf-8") as f:
                f.write('<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n")
            pairs.append(f"{path} {sample} valid")
            errors = list(schema.iter_errors(sample))
            if errors:
                problem(f"sample {name} does not validate against the schema of {ns}: {errors[0]}")
            else:
                ok(f"sample {name} validates")
        for name, text in INVALID_SAMPLES.get(ns, {}).items():
            sample = os.path.join(out_dir, f"invalid-{name}.xml")
            with open(sample, "w", encoding="utf-8") as f:
                f.write('<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n")
            pairs.append(f"{path} {sample} invalid")
            if schema.is_valid(sample):
                problem(f"invalid sample {name} validates against the schema of {ns}")
            else:
                ok(f"invalid sample {name} is refused")
        for element in SAMPLES.get(ns, {}):
            if element not in schema.elements:
                problem(f"the schema of {ns} has no global element {element}")
    with open(os.path.join(out_dir, "xmllint-pairs.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(pairs) + "\n")


def check_against_wsdl11_schema(wsdl_file):
    base = os.path.join(os.path.dirname(xmlschema.__file__), "schemas", "WSDL")
    wsdl_xsd = os.path.join(base, "wsdl.xsd")
    if not os.path.exists(wsdl_xsd):
        print(f"  skip  xmlschema {xmlschema.__version__} ships no WSDL 1.1 schema")
        return
    sources = [wsdl_xsd]
    soap_xsd = os.path.join(base, "wsdl-soap.xsd")
    if os.path.exists(soap_xsd):
        sources.append(soap_xsd)
    meta = xmlschema.XMLSchema10(sources)
    errors = list(meta.iter_errors(wsdl_file))
    names = " + ".join(os.path.basename(s) for s in sources)
    if errors:
        for e in errors[:5]:
            problem(f"the WSDL does not validate against the WSDL 1.1 schema ({names}): {e}")
    else:
        ok(f"the WSDL validates against the WSDL 1.1 schema shipped by xmlschema "
           f"{xmlschema.__version__} ({names})")

    # xmlschema's WSDL 1.1 model: parses messages, port types, bindings and services, and
    # knows SOAP 1.1 bindings only, so the SOAP 1.2 binding is its one expected complaint.
    model = Wsdl11Document(wsdl_file, validation="lax")
    unexpected = [e for e in model.errors if "Soap12Binding" not in str(e)]
    for e in unexpected:
        problem(f"xmlschema's WSDL 1.1 model: {e}")
    binding = model.bindings.get(f"{{{PRS}}}PersonRegistrationServiceSoap11Binding")
    if binding is None:
        problem("xmlschema's WSDL 1.1 model has no PersonRegistrationServiceSoap11Binding")
        return
    found = sorted(name for name, _, _ in binding.operations)
    if found != sorted(OPERATIONS):
        problem(f"the SOAP 1.1 binding has operations {found}, expected {sorted(OPERATIONS)}")
    for key, op in binding.operations.items():
        part = None
        if op.input is not None and op.input.message is not None:
            part = op.input.message.parts.get("parameters")
        if part is None or part.name != f"{{{PRS}}}{key[0]}Request":
            problem(f"{key[0]}: the input part in xmlschema's model is {part}, "
                    f"expected the element {key[0]}Request")
        if "ServiceFault" not in op.faults:
            problem(f"{key[0]}: no ServiceFault fault in xmlschema's model")
    if not unexpected:
        ok(f"xmlschema's WSDL 1.1 model reads the WSDL: {len(model.messages)} messages, "
           f"{len(binding.operations)} operations in the SOAP 1.1 binding "
           f"(its SOAP 1.2 binding is beyond that model)")


def check_addresses_and_actions(doc, endpoint):
    for ns, label in ((SOAP11, "soap:address"), (SOAP12, "soap12:address")):
        addresses = doc.findall(f"{{{WSDL}}}service/{{{WSDL}}}port/{{{ns}}}address")
        if len(addresses) != 1:
            problem(f"{len(addresses)} {label} elements, expected 1")
        for a in addresses:
            if a.get("location") != endpoint:
                problem(f"{label} location {a.get('location')!r}, expected {endpoint!r}")
            else:
                ok(f"{label} location is {endpoint}")
    for ns, label in ((SOAP11, "soap"), (SOAP12, "soap12")):
        for binding in doc.findall(f"{{{WSDL}}}binding"):
            if binding.find(f"{{{ns}}}binding") is None:
                continue
            names = []
            for op in binding.findall(f"{{{WSDL}}}operation"):
                names.append(op.get("name"))
                soap_op = op.find(f"{{{ns}}}operation")
                action = None if soap_op is None else soap_op.get("soapAction")
                if action != f"{PRS}/{op.get('name')}":
                    problem(f"{binding.get('name')} {op.get('name')}: {label}:operation soapAction {action!r}")
            if sorted(names) != sorted(OPERATIONS):
                problem(f"{binding.get('name')}: operations {names}")
            else:
                ok(f"{binding.get('name')}: {len(names)} operations, soapAction <namespace>/<operation>")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    wsdl_file, endpoint, out_dir = sys.argv[1:]
    os.makedirs(out_dir, exist_ok=True)
    doc = etree.parse(wsdl_file).getroot()
    if doc.tag != f"{{{WSDL}}}definitions":
        problem(f"the root element is {doc.tag}, not wsdl:definitions")
    by_ns = extract_schemas(doc, out_dir)
    for ns in (COMMON, PRS):
        if ns not in by_ns:
            problem(f"no inline schema for {ns}")
    check_schemas(by_ns, out_dir)
    check_against_wsdl11_schema(wsdl_file)
    check_addresses_and_actions(doc, endpoint)
    if problems:
        print(f"  {len(problems)} problem(s) in the served WSDL")
        sys.exit(1)


if __name__ == "__main__":
    main()
