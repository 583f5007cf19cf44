-- Every use of the RGW table a script can make, with its limits: the tests
-- run it on the in-memory table and on the NATS KV one (adapter/kvtable),
-- which must take it unchanged.
function transform(ev)
  RGW["s"] = "text"
  RGW["n"] = 42
  RGW["f"] = 1.5
  RGW["b"] = true
  assert(RGW["s"] == "text" and RGW["n"] == 42 and RGW["f"] == 1.5 and RGW["b"] == true)
  assert(RGW.increment("n") == 43 and RGW.increment("f", 2) == 3.5 and RGW.decrement("n", 3) == 40)
  RGW["b"] = nil
  assert(RGW["b"] == nil)
  local seen = {}
  for k, v in pairs(RGW) do seen[#seen + 1] = k .. "=" .. tostring(v) end
  table.sort(seen)
  assert(table.concat(seen, ",") == "f=3.5,n=40,s=text", table.concat(seen, ","))
  for _, bad in ipairs({
    function() RGW["t"] = {} end,
    function() RGW[("k"):rep(1000)] = ("v"):rep(100) end,
    function() RGW.increment("s") end,
    function() RGW.increment("n", "two") end,
  }) do
    assert(not pcall(bad))
  end
  return ev
end
