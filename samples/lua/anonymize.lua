-- anonymize.lua: pseudonymise who did it, drop where it came from, and take
-- the patient data out of X-ray style object keys.
--
--   userIdentity.principalId, s3.bucket.ownerIdentity.principalId
--       -> "anon-" .. first 16 hex digits of HMAC-SHA256(id, LUA_HMAC_KEY)
--   requestParameters.sourceIPAddress -> removed
--   prefix_Name_PatientID_DOB_StudyDate.ext
--       -> prefix_XXX_<12 hex digits of HMAC(PatientID)>_XXXX-XX-XX_StudyDate.ext
--       (in the record, the CloudEvent subject and the objectkey extension)
--
-- The same id always gives the same pseudonym (consumers can still group by
-- user or patient), and without the key nobody can compute it back.
-- Needs LUA_HMAC_KEY: without it rgwnats.hmac_sha256 fails, and the event
-- fails with it, rather than be published with a guessable hash.

local rn = require("rgwnats")

local function pseudonym(id)
  if id == nil or id == "" then return id end
  return "anon-" .. rn.hmac_sha256(id):sub(1, 16)
end

-- "dir/demo_Micheal Phillips_6580_1947-05-22_2017-04-27.jpeg"
--   -> "dir/demo_XXX_<12 hex digits>_XXXX-XX-XX_2017-04-27.jpeg"
-- Keys that do not have this shape are returned unchanged.
local function anonymize_key(key)
  local dir, base = key:match("^(.*/)([^/]*)$")
  if not dir then dir, base = "", key end
  local prefix, _, patient, _, study, ext =
    base:match("^([^_]+)_([^_]+)_([^_]+)_(%d%d%d%d%-%d%d%-%d%d)_([^_]-)(%.[^._]+)$")
  if not prefix then return key end
  return dir .. prefix .. "_XXX_" .. rn.hmac_sha256(patient):sub(1, 12) ..
    "_XXXX-XX-XX_" .. study .. ext
end

function transform(ev)
  local rec = ev.record -- the record, whether data is the record or {"Records":[record]}
  if rec == nil then
    return ev -- not an RGW notification: nothing we know how to anonymize
  end
  if rec.userIdentity then
    rec.userIdentity.principalId = pseudonym(rec.userIdentity.principalId)
  end
  if rec.requestParameters then
    rec.requestParameters.sourceIPAddress = nil
  end
  local s3 = rec.s3 or {}
  if s3.bucket and s3.bucket.ownerIdentity then
    s3.bucket.ownerIdentity.principalId = pseudonym(s3.bucket.ownerIdentity.principalId)
  end
  if s3.object and s3.object.key then
    local key = anonymize_key(s3.object.key)
    s3.object.key = key
    ev.subject = key
    ev.ext.objectkey = key
  end
  return ev
end
