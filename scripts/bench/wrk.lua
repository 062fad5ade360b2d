-- The requests of scripts/bench.sh, for wrk (Debian's wrk 4.x, LuaJIT).
--
--   wrk ... -s scripts/bench/wrk.lua URL -- KIND SLOT CPR...
--
-- KIND is one of
--   soap_read            POST /PersonStatusService/20 GetVariablePersonStatus (SOAP 1.1)
--   rest_kontaktgrupper  GET /personvisitering/v1/kontaktgrupper?kunAktuelle=true (X-Cpr)
--   rest_personkategorier GET /personvisitering/v1/personkategorier?kunAktuelle=true (X-Cpr)
--   rest_status          GET /personvisitering/v1/status (X-Cpr)
--   soap_create          POST /PersonRegistrationService/9 CreateContactGroup (SOAP 1.1)
--   rest_create          POST /personvisitering/v1/kontaktgrupper (JSON)
--   soap_history         POST /PersonHistoryService/4 GetPersonHistory (SOAP 1.1, no period)
--   rest_kontaktgruppehistorik  GET /personvisitering/v1/kontaktgruppehistorik (X-Cpr)
--   rest_personkategorihistorik GET /personvisitering/v1/personkategorihistorik (X-Cpr)
-- Every request is STAR's (organisation type 5): it sees every person and may register a
-- person who is not in the person register. Reads cycle over the seeded CPR numbers given
-- after SLOT. Creates give every request a fresh fictitious CPR number (ten digits, a valid
-- day and month first), drawn from a block of 250,000 numbers per (SLOT, wrk thread), so
-- that rule 5 never refuses one: bench.sh gives every create run its own SLOT (1..83).
--
-- Every response is checked: a status outside 2xx is counted, and done() prints one line
--   BENCHJSON {"requests":..,"duration_us":..,"non2xx":..,"errors":..,"p50_us":.., ...}
-- that bench.sh reads; a run with non2xx or errors is invalid.

local ORG_TYPE = "5"
local ORG_CODE = "12345678"
local USER = "bench"
local API = "/personvisitering/v1"

local threads = {}
local next_thread = 0

function setup(thread)
   thread:set("thread_no", next_thread)
   next_thread = next_thread + 1
   table.insert(threads, thread)
end

local function soap_envelope(ns_decl, body)
   return '<?xml version="1.0" encoding="UTF-8"?>\n'
      .. '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
      .. 'xmlns:dfdg="urn:dk:star:dfdg:common:1" ' .. ns_decl .. '>\n'
      .. '  <soapenv:Header>\n'
      .. '    <dfdg:RequestUserMetadata>\n'
      .. '      <dfdg:OrganisationType>' .. ORG_TYPE .. '</dfdg:OrganisationType>\n'
      .. '      <dfdg:OrganisationCode>' .. ORG_CODE .. '</dfdg:OrganisationCode>\n'
      .. '      <dfdg:UserIdentifier>' .. USER .. '</dfdg:UserIdentifier>\n'
      .. '    </dfdg:RequestUserMetadata>\n'
      .. '  </soapenv:Header>\n'
      .. '  <soapenv:Body>\n' .. body .. '  </soapenv:Body>\n'
      .. '</soapenv:Envelope>\n'
end

local function soap_read_request(cpr)
   local body = soap_envelope('xmlns:pss="urn:dk:star:dfdg:PersonStatusService:20"',
      '    <pss:GetVariablePersonStatusRequest>\n'
      .. '      <pss:PersonCivilRegistrationIdentifier>' .. cpr
      .. '</pss:PersonCivilRegistrationIdentifier>\n'
      .. '    </pss:GetVariablePersonStatusRequest>\n')
   return wrk.format("POST", "/PersonStatusService/20", {
      ["Content-Type"] = "text/xml; charset=utf-8",
      ["SOAPAction"] = '"urn:dk:star:dfdg:PersonStatusService:20/GetVariablePersonStatus"',
   }, body)
end

-- GetPersonHistory without a period: the converter makes GetKontaktgruppeHistorik and
-- GetPersonkategoriHistorik without fraDato/tilDato (scripts/bench.sh scale).
local function soap_history_request(cpr)
   local body = soap_envelope('xmlns:phs="urn:dk:star:dfdg:PersonHistoryService:4"',
      '    <phs:GetPersonHistoryRequest>\n'
      .. '      <phs:PersonCivilRegistrationIdentifier>' .. cpr
      .. '</phs:PersonCivilRegistrationIdentifier>\n'
      .. '    </phs:GetPersonHistoryRequest>\n')
   return wrk.format("POST", "/PersonHistoryService/4", {
      ["Content-Type"] = "text/xml; charset=utf-8",
      ["SOAPAction"] = '"urn:dk:star:dfdg:PersonHistoryService:4/GetPersonHistory"',
   }, body)
end

local function rest_get_request(path, cpr)
   return wrk.format("GET", path, {
      ["X-Organisation-Type"] = ORG_TYPE,
      ["X-Organisation-Code"] = ORG_CODE,
      ["X-User-Id"] = USER,
      ["X-Cpr"] = cpr,
   }, nil)
end

local function soap_create_request(cpr)
   local body = soap_envelope('xmlns:prs="urn:dk:star:dfdg:PersonRegistrationService:9"',
      '    <prs:CreateContactGroupRequest>\n'
      .. '      <prs:PersonCivilRegistrationIdentifier>' .. cpr
      .. '</prs:PersonCivilRegistrationIdentifier>\n'
      .. '      <prs:ContactGroup>\n'
      .. '        <prs:ContactGroupTypeIdentifier>1</prs:ContactGroupTypeIdentifier>\n'
      .. '        <prs:ContactGroupStartTime>2025-01-06T00:00:00+01:00</prs:ContactGroupStartTime>\n'
      .. '        <prs:ContactGroupEventTime>2025-01-06T09:30:00+01:00</prs:ContactGroupEventTime>\n'
      .. '      </prs:ContactGroup>\n'
      .. '    </prs:CreateContactGroupRequest>\n')
   return wrk.format("POST", "/PersonRegistrationService/9", {
      ["Content-Type"] = "text/xml; charset=utf-8",
      ["SOAPAction"] = '"urn:dk:star:dfdg:PersonRegistrationService:9/CreateContactGroup"',
   }, body)
end

-- The same registration as the REST call the converter makes for soap_create.
local function rest_create_request(cpr)
   local body = '{"cpr":"' .. cpr .. '","kontaktgruppetype":1,"startdato":"2025-01-06",'
      .. '"haendelsestidspunkt":"2025-01-06T08:30:00Z"}'
   return wrk.format("POST", API .. "/kontaktgrupper", {
      ["Content-Type"] = "application/json",
      ["X-Organisation-Type"] = ORG_TYPE,
      ["X-Organisation-Code"] = ORG_CODE,
      ["X-User-Id"] = USER,
   }, body)
end

-- The k-th fictitious CPR number: day 01-28, month 01-12, then six digits (k < 336,000,000).
local function cpr_of(k)
   local day = k % 28 + 1
   local month = math.floor(k / 28) % 12 + 1
   local rest = math.floor(k / 336)
   return string.format("%02d%02d%06d", day, month, rest)
end

local kind
local fixed = {}    -- pre-built requests (reads), used in turn
local fixed_next = 0
local counter       -- creates: the next CPR number's index
local counter_end   -- creates: the end of this thread's block
local make          -- creates: cpr -> request
local BLOCK = 250000

function init(args)
   kind = args[1]
   local slot = tonumber(args[2] or "0")
   non2xx = 0
   local cprs = {}
   for i = 3, #args do
      table.insert(cprs, args[i])
   end
   local builders = {
      soap_read = soap_read_request,
      rest_kontaktgrupper = function(c)
         return rest_get_request(API .. "/kontaktgrupper?kunAktuelle=true", c)
      end,
      rest_personkategorier = function(c)
         return rest_get_request(API .. "/personkategorier?kunAktuelle=true", c)
      end,
      rest_status = function(c)
         return rest_get_request(API .. "/status", c)
      end,
      soap_history = soap_history_request,
      rest_kontaktgruppehistorik = function(c)
         return rest_get_request(API .. "/kontaktgruppehistorik", c)
      end,
      rest_personkategorihistorik = function(c)
         return rest_get_request(API .. "/personkategorihistorik", c)
      end,
   }
   if builders[kind] then
      if #cprs == 0 then
         error("bench wrk.lua: " .. kind .. " needs CPR numbers after the slot")
      end
      for _, c in ipairs(cprs) do
         table.insert(fixed, builders[kind](c))
      end
   elseif kind == "soap_create" or kind == "rest_create" then
      -- BLOCK numbers per (slot, thread); up to 16 threads per slot (block 15 of a slot is
      -- scripts/bench/client.py's).
      if thread_no > 14 then
         error("bench wrk.lua: at most 15 wrk threads")
      end
      counter = (slot * 16 + thread_no) * BLOCK
      counter_end = counter + BLOCK
      if counter_end > 336000000 then
         error("bench wrk.lua: slot " .. slot .. " is past the CPR number space")
      end
      make = (kind == "soap_create") and soap_create_request or rest_create_request
   else
      error("bench wrk.lua: unknown kind " .. tostring(kind))
   end
end

function request()
   if make then
      if counter >= counter_end then
         error("bench wrk.lua: this thread used up its CPR numbers; use a shorter run")
      end
      local r = make(cpr_of(counter))
      counter = counter + 1
      return r
   end
   fixed_next = fixed_next % #fixed + 1
   return fixed[fixed_next]
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      if non2xx <= 3 then
         io.stderr:write("bench wrk.lua: " .. kind .. " answered " .. status .. ": "
            .. string.sub(body or "", 1, 400) .. "\n")
      end
   end
end

function done(summary, latency, requests)
   local bad = 0
   for _, t in ipairs(threads) do
      bad = bad + (t:get("non2xx") or 0)
   end
   local e = summary.errors
   local errors = e.connect + e.read + e.write + e.timeout
   io.write(string.format(
      'BENCHJSON {"requests":%d,"duration_us":%d,"non2xx":%d,"errors":%d,'
      .. '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_timeout":%d,'
      .. '"mean_us":%.1f,"stdev_us":%.1f,"max_us":%d,'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d}\n',
      summary.requests, summary.duration, bad, errors,
      e.connect, e.read, e.write, e.timeout,
      latency.mean, latency.stdev, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9)))
end
