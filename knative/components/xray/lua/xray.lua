-- xray.lua: feed the X-ray risk-assessment service.
--
-- Its consumer reads data.Records[0] (eventName, s3.bucket.name,
-- s3.object.key) and wants eventName to contain "ObjectCreated", so this
-- script:
--   * publishes only ObjectCreated events of images;
--   * skips the buckets the service itself writes to (<base>-processed and
--     <base>-anonymized), so that its own uploads do not come back to it;
--   * makes sure the data is a {"Records":[record]} envelope, whatever the
--     service's data mode (CE_DATA) is;
--   * publishes to xray.images.<bucket>.

local rn = require("rgwnats")

local images = { jpg = true, jpeg = true, png = true, dcm = true }

function transform(ev)
  if not ev.type:find("ObjectCreated", 1, true) then return nil end

  local bucket = ev.ext.bucket or ""
  if bucket:find("%-processed$") or bucket:find("%-anonymized$") then return nil end

  local ext = (ev.subject or ""):match("%.(%w+)$")
  if ext == nil or not images[ext:lower()] then return nil end

  local data = ev.data
  if type(data) == "table" and data.Records == nil and data.eventName then
    ev.data = { Records = rn.json.array({ data }) }
  end

  ev.nats.subject = "xray.images." .. rn.token(bucket)
  return ev
end
