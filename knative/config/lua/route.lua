-- route.lua: choose the NATS subject of each event, first match wins:
--
--   1. metadata x-amz-meta-route: "images"     -> route.images
--   2. a key under a top-level "directory"     -> rgw.<bucket>.dir.<first segment>
--   3. otherwise by bucket and event type      -> rgw.<bucket>.created | .removed | .other
--
-- Values are escaped with rgwnats.token, so a bucket, directory or metadata
-- value with dots, spaces or wildcards is always exactly one subject token.

local rn = require("rgwnats")
local token = rn.token

-- metadata is a list of {key = ..., val = ...} in the record.
local function metadata(rec, name)
  local list = rec and rec.s3 and rec.s3.object and rec.s3.object.metadata
  for _, kv in ipairs(list or {}) do
    if kv.key == name then return kv.val end
  end
  return nil
end

local kinds = { ObjectCreated = "created", ObjectRemoved = "removed" }

function transform(ev)
  local bucket = ev.ext.bucket or "unknown"
  local key = ev.ext.objectkey or ev.subject or ""

  local route = metadata(ev.record, "x-amz-meta-route")
  if route then
    ev.nats.subject = "route." .. token(route)
    return ev
  end

  local dir = key:match("^([^/]+)/")
  if dir then
    ev.nats.subject = "rgw." .. token(bucket) .. ".dir." .. token(dir)
    return ev
  end

  -- type is com.amazonaws.ObjectCreated:Put
  local kind = ev.type:match("%.(%a+):") or ""
  ev.nats.subject = "rgw." .. token(bucket) .. "." .. (kinds[kind] or "other")
  return ev
end
