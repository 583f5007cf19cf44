-- uploads.lua: count the uploads of each bucket, and route the first upload
-- of an object key apart from the overwrites of it, with the RGW table:
--
--   first upload of a key        -> uploads.<bucket>.first
--   another upload of that key   -> uploads.<bucket>.again
--   removal of the key           -> uploads.<bucket>.removed (its next upload is a first again)
--   the table is full            -> uploads.<bucket>.untracked
--
-- Every upload carries the bucket's running count in ev.ext.uploads and the
-- key's in ev.ext.keyuploads.
--
-- Kept in memory, the table starts empty with every pod and each replica
-- counts for itself. With LUA_RGW_TABLE_KV=<bucket> it lives in NATS KV:
-- every replica shares it and it survives scale to zero. RGW.increment is
-- atomic across replicas, so of two replicas taking uploads of one new key
-- at once exactly one sees 1 and routes it as the first.

local rn = require("rgwnats")
local token = rn.token

-- A table entry holds at most 1 KB of key and value, and S3 keys reach
-- 1 KB: long object keys are counted under their hash.
local function keyEntry(bucket, key)
  if #bucket + #key > 200 then
    key = "sha256:" .. rn.sha256(key)
  end
  return "key/" .. bucket .. "/" .. key
end

function transform(ev)
  local bucket = ev.ext.bucket or "unknown"
  local key = ev.ext.objectkey or ev.subject or ""
  local to = "uploads." .. token(bucket) .. "."
  local kind = ev.type:match("%.(%a+):")

  if kind == "ObjectRemoved" then
    RGW[keyEntry(bucket, key)] = nil
    ev.nats.subject = to .. "removed"
    return ev
  end
  if kind ~= "ObjectCreated" then
    return ev -- the service's NATS_SUBJECT template
  end

  -- A full table (100,000 entries) fails the increment of a new key; the
  -- event still goes out. A table that cannot be reached fails the event
  -- whether caught or not, and the sender retries it.
  local ok, n = pcall(RGW.increment, keyEntry(bucket, key))
  if not ok then
    rn.log.warn("upload not tracked", "error", n)
    ev.nats.subject = to .. "untracked"
    return ev
  end
  ev.ext.keyuploads = n
  ev.ext.uploads = RGW.increment("count/" .. bucket)
  ev.nats.subject = to .. (n == 1 and "first" or "again")
  return ev
end
