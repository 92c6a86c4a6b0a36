-- arena.lua: the smallest complete room script. Copy it to start your own.
--
-- Players join, move around a 1000 x 1000 arena, and leave. The server keeps
-- `room.state` in sync with every client: change it in place and the server
-- sends clients only what changed, once per tick. You never send state
-- yourself.
--
-- The hooks below are all optional; the server calls them on the room's
-- thread, one at a time:
--   onInit(room, config)                once, when the room is created
--   onPlayerJoin(room, player)          player = {clientId, joinedAt, metadata}
--   onPlayerLeave(room, player, reason) reason = "left", "disconnected", ...
--   onAction(room, clientId, action)    action = {type = "...", data = ...};
--                                       return true to relay it to every member
--   onTick(room, dt, tick)              every tick (64 per second by default)
--
-- `room` has: room.id, room.tick (the current tick number), room.config, and
-- room.state. Rules worth knowing about room.state:
--   * it holds maps, lists, strings, numbers and booleans; nil deletes a key.
--   * a table with keys 1..n is a list; `{}` is an empty *map*. For a list
--     that may start empty, write `list()` (or `list(a, b, c)`).
--   * a table you store is adopted: later changes to it still reach clients.
--   * each hook call has an instruction budget; loop over what changed, not
--     over everything, every tick.
-- An error in a hook is reported (with its line) and the room keeps running;
-- the changes made before the error are kept.

local ARENA_SIZE = 1000

function onInit(room, config)
    -- `{}` is a map keyed by clientId, so clients receive an object.
    room.state.players = {}
    room.state.tick = 0
end

function onPlayerJoin(room, player)
    -- Every field of this table reaches clients, and so will later changes.
    room.state.players[player.clientId] = { x = 0, y = 0, hp = 100 }
end

function onPlayerLeave(room, player, reason)
    -- Setting a key to nil deletes it for every client.
    room.state.players[player.clientId] = nil
end

-- Keeps v inside the arena. NaN fails both comparisons, so reject it first.
local function clamp(v)
    if v < 0 then
        return 0
    elseif v > ARENA_SIZE then
        return ARENA_SIZE
    end
    return v
end

local function isNumber(v)
    return type(v) == "number" and v == v -- v == v is false only for NaN
end

function onAction(room, clientId, action)
    if action.type ~= "move" then
        return true -- not ours (chat, emotes, ...): relay it to everyone as sent
    end
    local player = room.state.players[clientId]
    local data = action.data
    -- Client input is untrusted: ignore a move that is not {x = number, y = number}.
    if player == nil or type(data) ~= "table" or not isNumber(data.x) or not isNumber(data.y) then
        return false
    end
    player.x = clamp(data.x)
    player.y = clamp(data.y)
    return false -- the new position reaches clients through the state delta
end

function onTick(room, dt, tick)
    room.state.tick = room.state.tick + 1
end
