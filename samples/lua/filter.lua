-- filter.lua: publish only new images; everything else is dropped.
--
-- It reads only CloudEvent attributes (type, subject), so the data is never
-- decoded: filtering costs next to nothing.

local images = {
  jpg = true, jpeg = true, png = true, gif = true, webp = true,
  tif = true, tiff = true, bmp = true, dcm = true,
}

function transform(ev)
  -- com.amazonaws.ObjectCreated:Put, :Post, :Copy, :CompleteMultipartUpload
  if not ev.type:find("ObjectCreated", 1, true) then
    return nil
  end
  local ext = (ev.subject or ""):match("%.(%w+)$")
  if ext == nil or not images[ext:lower()] then
    return nil
  end
  return ev
end
