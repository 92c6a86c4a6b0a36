-- tag.lua: one player is "it"; touching another player passes it on.
--
-- A real-time game: players steer (action "steer" with {vx, vy}, in units per
-- second, at most SPEED), the server integrates every position every tick
-- (the state changes every tick), detects touches, and runs rounds on a
-- timer derived from the tick. Whoever is "it" when the round ends loses a
-- point... or rather, everyone else gains one.

local FIELD = 500 -- the field is FIELD x FIELD
local SPEED = 200 -- the largest speed a player may ask for
local REACH = 20 -- two players closer than this touch
local ROUND_MS = 60000 -- one round lasts a minute of game time
local IMMUNE_MS = 1000 -- the new "it" cannot tag back at once

local function clamp(v, lo, hi)
    if v ~= v then -- NaN
        return lo
    end
    return math.max(lo, math.min(hi, v))
end

function onInit(room)
    room.state.players = {} -- clientId -> {x, y, vx, vy, score}
    room.state.it = "" -- who is "it"
    room.state.round = 1
    room.state.roundEndsAt = ROUND_MS -- in room.time milliseconds
    room.state.tagAt = 0 -- room.time of the last tag
end

function onPlayerJoin(room, player)
    room.state.players[player.clientId] = {
        x = room:random(0, FIELD),
        y = room:random(0, FIELD),
        vx = 0,
        vy = 0,
        score = 0,
    }
    if room.state.it == "" then
        room.state.it = player.clientId
    end
end

function onPlayerLeave(room, player, reason)
    room.state.players[player.clientId] = nil
    if room.state.it == player.clientId then
        room.state.it = next(room.state.players) or "" -- anyone left takes over
    end
end

function onAction(room, clientId, action)
    local me = room.state.players[clientId]
    local data = action.data
    if action.type ~= "steer" or me == nil or type(data) ~= "table" then
        return false
    end
    if type(data.vx) == "number" and type(data.vy) == "number" then
        me.vx = clamp(data.vx, -SPEED, SPEED)
        me.vy = clamp(data.vy, -SPEED, SPEED)
    end
    return false
end

-- Positions are rounded to a tenth: clients do not need more, and an
-- unchanged rounded value is not sent again.
local function step(p, dt)
    if p.vx ~= 0 then
        p.x = math.floor(clamp(p.x + p.vx * dt, 0, FIELD) * 10 + 0.5) / 10
    end
    if p.vy ~= 0 then
        p.y = math.floor(clamp(p.y + p.vy * dt, 0, FIELD) * 10 + 0.5) / 10
    end
end

function onTick(room, dt, tick)
    local state = room.state
    local players = state.players
    for _, p in pairs(players) do
        step(p, dt)
    end
    -- "it" tags the first player within reach (after the immunity delay).
    local it = players[state.it]
    if it and room.time - state.tagAt >= IMMUNE_MS then
        for id, p in pairs(players) do
            if id ~= state.it and (p.x - it.x) ^ 2 + (p.y - it.y) ^ 2 < REACH * REACH then
                room:broadcast("tagged", { by = state.it, who = id })
                state.it = id
                state.tagAt = room.time
                break
            end
        end
    end
    if room.time >= state.roundEndsAt then
        for id, p in pairs(players) do
            if id ~= state.it then
                p.score = p.score + 1
            end
        end
        room:broadcast("round_over", { round = state.round, it = state.it })
        state.round = state.round + 1
        state.roundEndsAt = room.time + ROUND_MS
    end
end
