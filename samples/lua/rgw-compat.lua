-- rgw-compat.lua: a script written for Ceph RGW's postRequest context, as
-- RGW users write them to send notifications to NATS. It runs here unchanged:
--
--   * it has no transform function, so its top-level code runs once per
--     event, with Request built from the notification record;
--   * nats.connect() and client:connect() hand back the service's one NATS
--     connection (RGW would open a new TCP connection per request);
--   * client:publish(subject, payload) publishes the payload as is, and the
--     service answers RGW only once NATS has it.
--
-- Upload it to RGW with:
--   radosgw-admin script put --infile=rgw-compat.lua --context=postRequest

local lunajson = require("lunajson")
local nats = require("nats")

local events = {
  put_obj = "ObjectCreated:Put",
  post_obj = "ObjectCreated:Post",
  copy_obj = "ObjectCreated:Copy",
  complete_multipart = "ObjectCreated:CompleteMultipartUpload",
  delete_obj = "ObjectRemoved:Delete",
}

local event_name = events[Request.RGWOp]
if event_name == nil or Request.Response.HTTPStatusCode ~= 200 then
  return
end

local record = {
  eventVersion = "2.1",
  eventSource = "ceph:s3",
  awsRegion = Request.ZoneGroup.Name,
  eventTime = Request.Time,
  eventName = event_name,
  userIdentity = { principalId = Request.User.Id },
  responseElements = {
    ["x-amz-request-id"] = Request.Id,
    ["x-amz-id-2"] = Request.RGWId,
  },
  s3 = {
    bucket = {
      name = Request.Bucket.Name,
      id = Request.Bucket.Id,
      ownerIdentity = { principalId = Request.Bucket.User.Id },
    },
    object = {
      key = Request.Object.Name,
      size = Request.Object.Size,
      versionId = Request.Object.Instance,
    },
  },
}

local payload = lunajson.encode({ Records = { record } })

local client = nats.connect({ host = nil, port = nil })
client:connect()
client:publish("rgw.notifications", payload)
client:close()
RGWDebugLog("published " .. event_name .. " of " .. Request.Bucket.Name .. "/" .. Request.Object.Name)
