-- wrk: GET /v1/players/player-<k> for k drawn uniformly from 0 … PLAYERS-1 (as redis-benchmark -r).
local players = tonumber(os.getenv("PLAYERS") or "1000000")
math.randomseed(os.time())
request = function()
    return wrk.format("GET", "/v1/players/player-" .. math.random(0, players - 1))
end
