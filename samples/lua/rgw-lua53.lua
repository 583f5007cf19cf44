-- rgw-lua53.lua: an RGW postRequest script in Lua 5.3, as RGW (which links
-- liblua5.3) runs it: integer division, bitwise operators and the utf8
-- library. It runs here unchanged and publishes what lua5.3 computes
-- (adapter/lua's tests run it in both and compare).
--
--   radosgw-admin script put --infile=rgw-lua53.lua --context=postRequest

local nats = require("nats")

if Request.RGWOp ~= "put_obj" and Request.RGWOp ~= "copy_obj" then
  return
end

local key = Request.Object.Name
local size = Request.Object.Size or 0

-- 16 shards by a 32-bit hash of the key.
local h = 0x811C9DC5 & 0xFFFF
for i = 1, #key do
  h = ((h << 5) + h + key:byte(i)) & 0xFFFFFFFF
end
local shard = h & 0xF

-- Characters, not bytes, and the key's first character.
local chars = utf8.len(key) or -1
local first = utf8.codepoint(key, 1)

local payload = string.format(
  '{"bucket":"%s","key":"%s","kib":%d,"blocks":%d,"shard":%d,"hash":"%08x","chars":%d,"first":%d,"flags":%d}',
  Request.Bucket.Name, key, size // 1024, (size + 4095) // 4096, shard, h, chars, first,
  (size > 1 << 20 and 1 or 0) | (chars ~= #key and 2 or 0) | (~shard & 0x10))

local client = nats.connect({ host = nil, port = nil })
client:connect()
client:publish("rgw.shard." .. shard, payload)
