-- textkit-route.lua: route by the first directory of the object key, with
-- the pinned textkit module (modules/textkit.lua). Needs
-- LUA_MODULES=/path/to/samples/lua/modules.
--
--   "Röntgen Bilder/2024/img.jpg" in bucket "xray"
--     -> subject "uploads.xray.r-ntgen-bilder.<shard 0-15>"
--        headers Size: "106 KiB", Textkit: "textkit 1.2.0"

local textkit = require("textkit")
local rn = require("rgwnats")

function transform(ev)
  local key = ev.ext.objectkey
  if key == nil then return ev end
  local top = textkit.split(key, "/")[1]
  local slug = textkit.slug(top)
  if slug == "" then slug = "root" end
  local shard = textkit.hash32(key) & 0xF
  ev.nats.subject = "uploads." .. rn.token(ev.ext.bucket) .. "." .. rn.token(slug) .. "." .. shard
  local rec = ev.record
  if rec and rec.s3 and rec.s3.object and rec.s3.object.size then
    ev.nats.header["Size"] = textkit.human(rec.s3.object.size)
  end
  ev.nats.header["Textkit"] = textkit._VERSION
  return ev
end
