-- textkit 1.2.0: small string helpers in pure Lua 5.3, written for the
-- rgw-nats samples. It stands for the third-party packages RGW users pin
-- (radosgw-admin script-package add --package='textkit 1.2.0'): put the
-- file in a directory of LUA_MODULES and require("textkit").
--
-- Nothing here is rgw-nats specific; it runs the same in lua5.3.

local M = { _VERSION = "textkit 1.2.0" }

-- split("a/b//c", "/") -> {"a", "b", "", "c"}; sep is a plain string.
function M.split(s, sep)
  local parts, start = {}, 1
  while true do
    local i, j = s:find(sep, start, true)
    if not i then
      parts[#parts + 1] = s:sub(start)
      return parts
    end
    parts[#parts + 1] = s:sub(start, i - 1)
    start = j + 1
  end
end

function M.trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

function M.starts_with(s, prefix) return s:sub(1, #prefix) == prefix end

function M.ends_with(s, suffix) return suffix == "" or s:sub(-#suffix) == suffix end

-- slug("Röntgen Bilder 2024") -> "r-ntgen-bilder-2024": ASCII letters and
-- digits lower-cased, every run of anything else (a UTF-8 character counts
-- as one) becomes one "-".
function M.slug(s)
  local out = {}
  for _, c in utf8.codes(s) do
    local ch = c < 0x80 and string.char(c):lower() or "-"
    if not ch:match("[%w]") then ch = "-" end
    if not (ch == "-" and out[#out] == "-") then out[#out + 1] = ch end
  end
  return (table.concat(out):gsub("^%-+", ""):gsub("%-+$", ""))
end

-- hash32(s): a 32-bit multiplicative string hash (h * 31 + byte), kept
-- below 2^32 with a mask at every step.
function M.hash32(s)
  local h = 0
  for i = 1, #s do
    h = (h * 31 + s:byte(i)) & 0xFFFFFFFF
  end
  return h
end

-- human(108622) -> "106 KiB": sizes in binary units, integer division.
function M.human(n)
  local units = { "B", "KiB", "MiB", "GiB", "TiB" }
  local i = 1
  while n >= 1024 and i < #units do
    n = n // 1024
    i = i + 1
  end
  return string.format("%d %s", n, units[i])
end

return M
