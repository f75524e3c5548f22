-- An allocation-heavy Lua script: tables, string building, closures,
-- churned through the garbage collector.  Prints a checksum.
local scale = tonumber(arg[1] or "1")
local rounds = math.max(1, math.floor(30 * scale))
local sum = 0
local keep = {}
for r = 1, rounds do
  local t = {}
  for i = 1, 30000 do
    local s = "item" .. i .. ":" .. r
    t[s] = { i, s:rep(i % 5), function() return i + r end }
  end
  local parts = {}
  for k, v in pairs(t) do parts[#parts + 1] = k .. #v[2] end
  table.sort(parts)
  local joined = table.concat(parts, ",", 1, math.min(#parts, 5000))
  sum = (sum + #joined + #parts) % 1000000007
  keep[#keep + 1] = parts
  if #keep > 6 then table.remove(keep, 1) end
end
print(sum)
