-- fanout.lua: one notification, two messages.
--
--   internal.rgw.<bucket>  the full event, for services inside the trust boundary
--   public.rgw.<bucket>    a copy without user ids, source address or metadata
--                          values, for everyone else
--
-- The copy is made before anything reads ev.data, so the full event is
-- published with its data exactly as received.

local rn = require("rgwnats")

function transform(ev)
  local bucket = rn.token(ev.ext.bucket or "unknown")
  local public = ev:clone()

  ev.nats.subject = "internal.rgw." .. bucket

  local rec = public.record
  if rec then
    rec.userIdentity = nil
    rec.requestParameters = nil
    rec.s3.bucket.ownerIdentity = nil
    for _, kv in ipairs(rec.s3.object.metadata or {}) do
      kv.val = "-"
    end
  end
  public.nats.subject = "public.rgw." .. bucket
  public.nats.header["Rgw-Nats-Redacted"] = "true"
  return ev, public
end
