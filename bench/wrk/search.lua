-- wrk script: rotate over mixed /search queries (page of 100).
-- UNCACHED=1 adds a unique, ignored parameter so every request misses nivl's body cache.
local queries = {
  "q=apollo", "q=moon&media_type=image", "q=mars%20rover", "q=launch&sort=date_desc",
  "q=space%20station", "q=hubble", "q=astronaut&media_type=image,video", "q=earth",
  "q=sun&media_type=video", "q=rocket%20launch", "q=nebula", "q=galaxy&sort=date_asc",
  "q=orion", "q=artemis&collapse=event", "q=shuttle", "center=JPL", "q=saturn",
  "keywords=Apollo%2011", "q=crew&year_start=2000&year_end=2010", "q=spacewalk",
}
local n = 0
local uncached = os.getenv("UNCACHED") == "1"
request = function()
  n = n + 1
  local path = "/search?" .. queries[(n % #queries) + 1]
  if uncached then path = path .. "&_n=" .. n .. "_" .. math.random(1, 1000000000) end
  local headers = {}
  if os.getenv("GZIP") ~= "0" then headers["Accept-Encoding"] = "gzip" end
  return wrk.format("GET", path, headers)
end
