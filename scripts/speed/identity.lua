-- identity.lua: the Lua path's own cost, the ceiling of every script.
-- A state from the pool, the event handed to the function and back, the
-- result checked: what any transform pays before it does anything.
function transform(ev)
  return ev
end
