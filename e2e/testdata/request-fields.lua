-- request-fields.lua: one line of what a postRequest script sees of
-- Request, for the e2e test to compare. The same file runs inside RGW
-- (radosgw-admin script put --context=postRequest; the line appears in RGW's
-- log at debug_rgw = 20) and inside rgw-nats (LUA_SCRIPT; the line appears
-- in its log at LOG_LEVEL=debug). Only object writes to the e2e-lua bucket.

local function get(f)
  local ok, v = pcall(f)
  if not ok or v == nil then
    return "nil"
  end
  return tostring(v)
end

-- sorted lists a map as k:v pairs in key order (iteration order differs),
-- only the keys starting with prefix when one is given. It iterates outside
-- pcall: inside it, Tentacle's pairs over Request.HTTP.Metadata yields
-- iterator objects as keys, and the map then refuses any later iteration.
local function sorted(f, prefix)
  local ok, t = pcall(f)
  if not ok or t == nil then
    return "nil"
  end
  local items = {}
  for k, v in pairs(t) do
    if prefix == nil or string.sub(string.lower(tostring(k)), 1, #prefix) == prefix then
      items[#items + 1] = tostring(k) .. ":" .. tostring(v)
    end
  end
  table.sort(items)
  return "{" .. table.concat(items, ",") .. "}"
end

if get(function() return Request.Bucket.Name end) ~= "e2e-lua" then
  return
end
if get(function() return Request.RGWOp end) ~= "put_obj" then
  return
end

local fields = {
  "op=" .. get(function() return Request.RGWOp end),
  "bucket=" .. get(function() return Request.Bucket.Name end),
  "bucket.id=" .. get(function() return Request.Bucket.Id end),
  "bucket.tenant=" .. get(function() return Request.Bucket.Tenant end),
  "bucket.owner=" .. get(function() return Request.Bucket.User.Id end),
  "object=" .. get(function() return Request.Object.Name end),
  "object.size=" .. get(function() return Request.Object.Size end),
  "object.instance=" .. get(function() return Request.Object.Instance end),
  -- Pacific has no Request.User (reading it stops the script there, pcall
  -- or not); ObjectOwner is the writer of the object.
  "user=" .. get(function() return Request.ObjectOwner.User.Id end),
  "user.tenant=" .. get(function() return Request.ObjectOwner.User.Tenant end),
  "owner.name=" .. get(function() return Request.ObjectOwner.DisplayName end),
  "content_length=" .. get(function() return Request.ContentLength end),
  "id=" .. get(function() return Request.Id end),
  "rgwid=" .. get(function() return Request.RGWId end),
  -- Tentacle's Request.Time ends in a NUL byte, which would end RGW's log
  -- line there: up to it.
  "time=" .. get(function()
    local s = tostring(Request.Time)
    local nul = string.find(s, "\0", 1, true)
    if nul then s = string.sub(s, 1, nul - 1) end
    return s
  end),
  "dialect=" .. get(function() return Request.Dialect end),
  "zonegroup=" .. get(function() return Request.ZoneGroup.Name end),
  "status=" .. get(function() return Request.Response.HTTPStatusCode end),
  "metadata=" .. sorted(function() return Request.HTTP.Metadata end),
  "tags=" .. sorted(function() return Request.Tags end),
  "usermeta=" .. sorted(function() return Request.HTTP.Metadata end, "x-amz-meta-"),
  "transaction=" .. get(function() return Request.TransactionId end),
  "decoded_uri=" .. get(function() return Request.DecodedURI end),
  "host=" .. get(function() return Request.HTTP.Host end),
}
RGWDebugLog("E2E-LUA " .. table.concat(fields, "|"))
