-- prelude.lua: the sandbox a room script runs in, and the driver Python calls.
--
-- Loaded once per runtime with (S, roomId, instructionLimit, seed, tickLimit),
-- S being the module state.lua returned, seed the room's random seed (an
-- integer) and tickLimit the instructions all hook calls of one tick may run
-- together (each call also has instructionLimit on its own).
-- Returns the driver: one function per entry point, each a single Lua call
-- from Python. Every driver function returns
-- `ok, value-or-message, line` and never raises for a script's fault.
--
-- The budget. Script code runs in a worker coroutine, and the count hook is
-- set on that coroutine only (hooks are per thread). When it fires it raises,
-- and re-arms itself to raise at every following instruction of the worker,
-- script or state.lua alike: a script that catches the error with pcall never
-- runs another instruction, and the error ends the coroutine. The driver runs
-- on the main thread, out of the hook's reach, so it always gets control back.
-- That is why state.lua keeps every write safe to interrupt at any instruction.

local S, roomId, instructionLimit, seed, tickLimit = ...

local sethook, getinfo = debug.sethook, debug.getinfo
local load, rawget, rawset, rawequal = load, rawget, rawset, rawequal
local type, tostring, tonumber = type, tostring, tonumber
local create, resume, yield = coroutine.create, coroutine.resume, coroutine.yield
local next, setmetatable, error, pcall, select = next, setmetatable, error, pcall, select
local pack, unpack = table.pack, table.unpack
local byte, format, sub, match, gsub = string.byte, string.format, string.sub, string.match, string.gsub

-- Sandbox -----------------------------------------------------------------

-- `("").dump` reaches the real string table, so dump goes from it too; the
-- string metatable is locked so scripts cannot reach that table at all.
string.dump = nil
getmetatable("").__metatable = "string"

local function copy(t)
    local c = {}
    for k, v in next, t do
        c[k] = v
    end
    return c
end

-- __gc finalizers would run during any allocation, outside every budget.
local function safeSetmetatable(t, mt)
    if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
        error("__gc metamethods are not available to room scripts", 2)
    end
    return setmetatable(t, mt)
end

-- A message handler runs with hooks off when the error came from a hook (the
-- budget's), so a looping handler would escape the budget. Scripts get an
-- xpcall whose handler runs after unwinding instead; without the debug library
-- a script cannot tell the difference.
local function safeXpcall(f, handler, ...)
    if type(handler) ~= "function" then
        error("bad argument #2 to 'xpcall' (function expected)", 2)
    end
    local results = pack(pcall(f, ...))
    if results[1] then
        return unpack(results, 1, results.n)
    end
    local _, r = pcall(handler, results[2])
    return false, r
end

-- Bounded library calls ----------------------------------------------------
--
-- The budget counts a call into a C function as one instruction, so every C
-- function a script can reach must finish in bounded time. Most are linear in
-- their data, which the memory cap bounds; these are not, and are wrapped:
--   * pattern functions backtrack: worst case grows as subject^quantifiers;
--   * string.rep is the one call that turns a few bytes into many;
--   * table functions walk many elements in one call, and a metatable
--     holding C functions (`__index = table.concat`, a lying `__len`) makes
--     each step free.
-- string.format needs nothing: Lua 5.4 refuses widths and precisions over 99.
-- Each wrapper checks its arguments, then calls the real function; the
-- errors that function raises carry this file's position, which `failure`
-- strips (the script's line is found on the stack instead).

local MAX_PATTERN_SUBJECT = 16384 -- bytes of a subject find/match/gmatch/gsub take
local MAX_PATTERN_LENGTH = 256 -- bytes of a pattern
-- Worst-case match attempts (times pattern length / 16) one call may need:
-- about 20 ms of backtracking on the machine we measured.
local MAX_PATTERN_WORK = 1 << 21
local MAX_REP_RESULT = 1 << 20 -- bytes of a string.rep result
-- Elements one table function may walk: table.sort and table.concat on 2^20
-- numbers take 1 to 3 s, table.move({}, 1, 2^40, 2) forever. Sort, concat
-- and move always obey it; unpack, insert and remove only on a table with a
-- metatable (not a room.state proxy's, whose metamethods are Lua code, under
-- the budget), which a C function as __index or __newindex makes endless.
local MAX_TABLE_SPAN = 1 << 15

local rawGetmetatable, isProxy = debug.getmetatable, S.isProxy
local floor = math.floor

-- Index just past the set starting at p[j - 1] == "[", as Lua's classEnd.
local function setEnd(p, j, n)
    if byte(p, j) == 94 then -- "^"
        j = j + 1
    end
    repeat
        if j > n then
            return n + 1 -- malformed: the real function reports it
        end
        local c = byte(p, j)
        j = j + 1
        if c == 37 and j <= n then -- "%" escapes the next byte
            j = j + 1
        end
    until byte(p, j) == 93 -- "]"
    return j + 1
end

-- Whether p[i..] is only capture closes: a quantifier before them never backtracks.
local function onlyCloses(p, i, n)
    for j = i, n do
        if byte(p, j) ~= 41 then
            return false
        end
    end
    return true
end

-- anchored, q: whether p starts with "^", and how many of its items can
-- backtrack over the subject (quantified items not at the end, %b, %1-%9).
local function patternShape(p)
    local n = #p
    local anchored = byte(p, 1) == 94
    local i = anchored and 2 or 1
    local q = 0
    while i <= n do
        local c = byte(p, i)
        local single = true -- a single-byte item, which a quantifier may follow
        if c == 40 or c == 41 then -- "(" or ")"
            i, single = i + 1, false
        elseif c == 37 then -- "%"
            local d = byte(p, i + 1)
            if d == 98 then -- %bxy
                i, single, q = i + 4, false, q + 1
            elseif d == 102 then -- %f[set]
                i, single = setEnd(p, i + 3, n), false
            elseif d and d >= 48 and d <= 57 then -- back reference
                i, single, q = i + 2, false, q + 1
            else
                i = i + 2
            end
        elseif c == 91 then -- "["
            i = setEnd(p, i + 1, n)
        else
            i = i + 1
        end
        if single then
            local d = byte(p, i)
            if d == 42 or d == 43 or d == 45 or d == 63 then -- * + - ?
                i = i + 1
                if not onlyCloses(p, i, n) then
                    q = q + 1
                end
            end
        end
    end
    return anchored, q
end

local shapes, nShapes = {}, 0 -- pattern -> q, or -q - 1 when anchored

-- Raises unless pattern p on a subject of n bytes is bounded by MAX_PATTERN_WORK.
-- Within one attempt the items that backtrack consume disjoint pieces of the
-- subject, so an attempt has at most C(n + q, q) ways to go, and all attempts
-- together (one per start) C(n + q + 1, q + 1).
local function checkPattern(name, s, p, anchors)
    local ts, tp = type(s), type(p)
    if (ts ~= "string" and ts ~= "number") or (tp ~= "string" and tp ~= "number") then
        return -- not strings: the real function raises its own error
    end
    local n = ts == "string" and #s or #tostring(s)
    if n > MAX_PATTERN_SUBJECT then
        error(format("%s: subject longer than %d bytes", name, MAX_PATTERN_SUBJECT), 3)
    end
    p = tostring(p)
    local plen = #p
    if plen > MAX_PATTERN_LENGTH then
        error(format("%s: pattern longer than %d bytes", name, MAX_PATTERN_LENGTH), 3)
    end
    local shape = shapes[p]
    if shape == nil then
        local anchored, q = patternShape(p)
        shape = anchored and -q - 1 or q
        if nShapes >= 256 then
            shapes, nShapes = {}, 0
        end
        shapes[p], nShapes = shape, nShapes + 1
    end
    local k = shape
    if k < 0 then
        k = -k - 1
        if not anchors then -- gmatch does not anchor
            k = k + 1
        end
    else
        k = k + 1
    end
    local work = floor((plen + 15) / 16)
    for j = 1, k do
        work = work * (n + j) / j
        if work > MAX_PATTERN_WORK then
            error(format("%s: pattern too complex for a subject of %d bytes (shorten the subject or simplify the pattern)", name, n), 3)
        end
    end
end

-- Each real function is an upvalue named as in the string library, so that
-- its argument errors name it ("bad argument #1 to 'find'").
local boundedFind, boundedMatch, boundedGmatch, boundedGsub
do
    local find, match, gmatch, gsub = string.find, string.match, string.gmatch, string.gsub

    function boundedFind(s, p, ...)
        checkPattern("string.find", s, p, true)
        return find(s, p, ...)
    end

    function boundedMatch(s, p, ...)
        checkPattern("string.match", s, p, true)
        return match(s, p, ...)
    end

    function boundedGmatch(s, p, ...)
        checkPattern("string.gmatch", s, p, false)
        return gmatch(s, p, ...)
    end

    function boundedGsub(s, p, ...)
        checkPattern("string.gsub", s, p, true)
        return gsub(s, p, ...)
    end
end

local function byteLen(v)
    local tv = type(v)
    if tv == "string" then
        return #v
    elseif tv == "number" then
        return #tostring(v)
    end
    return nil
end

local rep = string.rep

local function boundedRep(s, n, sep)
    local len, seplen, count = byteLen(s), sep == nil and 0 or byteLen(sep), tonumber(n)
    if len and seplen and count and count > 1 and len * count + seplen * (count - 1) > MAX_REP_RESULT then
        error(format("string.rep: result longer than %d bytes", MAX_REP_RESULT), 2)
    end
    return rep(s, n, sep)
end

-- Raises if a call would walk t from first (default 1) to last (default #t)
-- and that is more than MAX_TABLE_SPAN elements. Unless `always`, only for
-- a t with a metatable that is not a proxy's.
local function checkSpan(name, t, first, last, always)
    if type(t) ~= "table" then
        return -- the real function raises its own error
    end
    local mt = rawGetmetatable(t) ~= nil and not isProxy(t)
    if not (always or mt) then
        return
    end
    -- tonumber: the real functions take numeric strings ("1e12") too
    first = first == nil and 1 or tonumber(first)
    if last == nil then
        last = #t
    end
    last = tonumber(last)
    if first and last and last - first >= MAX_TABLE_SPAN then
        local which = mt and " of a table with a metatable" or ""
        error(format("%s: more than %d elements%s", name, MAX_TABLE_SPAN, which), 3)
    end
end

local boundedConcat, boundedUnpack, boundedInsert, boundedRemove, boundedSort, boundedMove
do
    local concat, insert, remove, move, sort = table.concat, table.insert, table.remove, table.move, table.sort

    function boundedConcat(t, sep, i, j)
        checkSpan("table.concat", t, i, j, true)
        return concat(t, sep, i, j)
    end

    function boundedUnpack(t, i, j)
        checkSpan("table.unpack", t, i, j)
        return unpack(t, i, j)
    end

    function boundedInsert(t, ...)
        checkSpan("table.insert", t)
        return insert(t, ...)
    end

    function boundedRemove(t, ...)
        checkSpan("table.remove", t)
        return remove(t, ...)
    end

    function boundedSort(t, ...)
        checkSpan("table.sort", t, nil, nil, true)
        return sort(t, ...)
    end

    function boundedMove(a1, f, e, t, a2)
        checkSpan("table.move", a1, f, e, true) -- as many reads from a1 as writes to a2
        return move(a1, f, e, t, a2)
    end
end

local scriptString = copy(string)
scriptString.find, scriptString.match, scriptString.gmatch = boundedFind, boundedMatch, boundedGmatch
scriptString.gsub, scriptString.rep = boundedGsub, boundedRep
-- Method calls (`s:rep(n)`) index the string metatable: the bounded functions
-- too, from a table of their own so a script patching `string` changes
-- nothing there. The real string table stays intact for this file and state.lua.
rawGetmetatable("").__index = copy(scriptString)

local scriptTable = copy(table)
scriptTable.concat, scriptTable.unpack, scriptTable.insert = boundedConcat, boundedUnpack, boundedInsert
scriptTable.remove, scriptTable.sort, scriptTable.move = boundedRemove, boundedSort, boundedMove

-- math.random is Lua's own generator, seeded per room by Python (the seed is
-- LuaRoomScript.seed: the same seed gives the same numbers). A script's
-- math.randomseed(x [, y]) re-seeds that generator from x and y alone, as in
-- plain Lua, so it stays reproducible; randomseed() with no argument would
-- seed from the clock, and is an error instead.
local randomseed = math.randomseed
randomseed(seed, 0)

local function scriptRandomseed(...)
    if select("#", ...) == 0 then
        error("math.randomseed needs a seed: the room's generator is already seeded", 2)
    end
    randomseed(...)
end

local scriptMath = copy(math)
scriptMath.randomseed = scriptRandomseed

local env = {
    _VERSION = _VERSION,
    assert = assert,
    error = error,
    getmetatable = getmetatable,
    ipairs = ipairs,
    list = S.list,
    next = S.next,
    pairs = pairs,
    pcall = pcall,
    print = function() end, -- scripts have no console; logs would be per tick
    rawequal = rawequal,
    rawlen = S.rawlen,
    select = select,
    setmetatable = safeSetmetatable,
    tonumber = tonumber,
    tostring = tostring,
    type = type,
    unpack = boundedUnpack,
    xpcall = safeXpcall,
    -- Copies, so a script patching them cannot change what this file calls.
    math = scriptMath,
    string = scriptString,
    table = scriptTable,
    utf8 = copy(utf8),
}
env._G = env

-- Nothing below needs these again; scripts never see _G, this is belt and braces.
for _, name in next, { "collectgarbage", "debug", "dofile", "io", "load", "loadfile", "os", "package", "python", "require" } do
    _G[name] = nil
end

-- Scripts may give `room` a metatable, and the driver runs out of the budget's
-- reach: it touches room only with rawget/rawset/rawequal, so no script
-- metamethod (__index, __newindex, __eq) ever runs on the driver's thread.
local room = { id = roomId, tick = 0, time = 0, state = S.root(), players = {}, metadata = {} }

-- The room API -------------------------------------------------------------
-- Methods that act outside the state queue commands; Python reads `pending.n`
-- after each call and, only when it is not 0, takes them with D.drain().

local pending = { n = 0 }
local commands = {}
local MAX_COMMANDS = 256 -- per hook call

local function command(op, a, b, c)
    local n = rawget(pending, "n")
    if n >= MAX_COMMANDS then
        error("more than " .. MAX_COMMANDS .. " room commands in one hook call", 3)
    end
    commands[n + 1] = { op, a, b, c }
    rawset(pending, "n", n + 1)
end

local function needString(v, what)
    if type(v) ~= "string" then
        error(what .. " must be a string", 3)
    end
    return v
end

-- room:broadcast(type, data): every member gets an `action` from "$server".
function room.broadcast(_, actionType, data)
    command("broadcast", needString(actionType, "type"), data)
end

-- room:send(clientId, type, data): one member gets it.
function room.send(_, clientId, actionType, data)
    command("send", needString(clientId, "clientId"), needString(actionType, "type"), data)
end

-- room:kick(clientId, reason): the player leaves (onPlayerLeave runs, reason "kicked").
function room.kick(_, clientId, reason)
    command("kick", needString(clientId, "clientId"), reason ~= nil and needString(reason, "reason") or "")
end

-- room:lock() / room:unlock(): a locked room refuses joins (room_locked).
function room.lock()
    command("lock", true)
end

function room.unlock()
    command("lock", false)
end

-- room:setMetadata(key, value): shown in list_rooms; nil removes the key.
function room.setMetadata(_, key, value)
    needString(key, "key")
    if value ~= nil then
        value = needString(tostring(value), "value")
    end
    rawset(rawget(room, "metadata"), key, value)
    command("meta", key, value)
end

-- room:random() in [0, 1), room:random(m, n) an integer in [m, n]: the room's generator.
function room.random(_, m, n)
    if m == nil then
        return math.random()
    end
    return math.random(m, n)
end

-- room:log(level, ...): into the server's log with the room id (rate-limited there).
function room.log(_, level, ...)
    local parts = { ... }
    for i = 1, select("#", ...) do
        parts[i] = tostring(parts[i])
    end
    command("log", tostring(level), S.validUtf8(table.concat(parts, " ")))
end

local function drainCommands()
    local out = commands
    commands = {}
    rawset(pending, "n", 0)
    return out
end

local function setTick(tick)
    rawset(room, "tick", tick)
    local config = rawget(room, "config")
    local rate = config and rawget(config, "tickRate")
    if math.type(rate) == "integer" and rate > 0 then
        rawset(room, "time", tick * 1000 // rate)
    end
end

-- Budget and errors --------------------------------------------------------

local BUDGET = "instruction budget exceeded"
local scriptSource -- debug source of the script's functions ("=name")
local prefix = "?:" -- how Lua prefixes the script's error messages ("name:")
local exceeded, exceededLine = false, nil

-- Line of the innermost script frame of thread co (nil: this thread), from `level` out.
local function scriptLine(co, level)
    while true do
        local info
        if co then
            info = getinfo(co, level, "Sl")
        else
            info = getinfo(level, "Sl")
        end
        if info == nil then
            return nil
        end
        if info.source == scriptSource and info.currentline > 0 then
            return info.currentline
        end
        level = level + 1
    end
end

local function stopHook()
    error(BUDGET, 0)
end

-- The count hook fires every STEP instructions and adds them to `spent`, the
-- instructions of this tick so far; past `callEnd` (the end of this call's
-- allowance: its own limit, or what is left of the tick's) the call stops.
local STEP = math.min(1000, instructionLimit)
local spent, callEnd = 0, 0
local function stepHook()
    spent = spent + STEP
    if spent >= callEnd then
        exceeded = true
        exceededLine = scriptLine(nil, 2) -- from this hook outwards, the first script frame
        sethook(stopHook, "", 1)
        error(BUDGET, 0)
    end
end

-- The worker coroutine: runs fn(a, b, c, d), yields its first result, waits
-- for the next. An error ends it; `run` then makes a new one.
local worker
local function workerBody(fn, a, b, c, d)
    while true do
        fn, a, b, c, d = yield((fn(a, b, c, d)))
    end
end

-- `false, message, line` for the error r that ended thread co.
local function failure(r, co)
    if exceeded then
        if exceededLine then
            return false, prefix .. exceededLine .. ": " .. BUDGET, exceededLine
        end
        return false, prefix .. " " .. BUDGET, nil
    end
    local tr = type(r)
    -- Lua's preset message for a failed allocation (no handler runs for it).
    if r == "not enough memory" then
        return false, prefix .. " memory limit exceeded", nil
    end
    local msg = (tr == "string" or tr == "number") and tostring(r) or format("(error object is a %s value)", tr)
    local line
    if sub(msg, 1, 12) == "prelude.lua:" then
        -- raised by a library function a wrapper above called: the script's
        -- line is on the stack
        msg = gsub(msg, "^prelude%.lua:%d+: ", "", 1)
    end
    if sub(msg, 1, #prefix) == prefix then
        line = tonumber(match(msg, "^(%d+):", #prefix + 1))
    end
    if line == nil then
        line = co and scriptLine(co, 0) -- a dead coroutine keeps its stack
        msg = line and prefix .. line .. ": " .. msg or prefix .. " " .. msg
    end
    return false, S.validUtf8(msg), line
end

-- A script that assigned room.state made a plain table the root; adopt it.
local function adoptRoot()
    rawset(room, "state", S.replaceRoot(rawget(room, "state")))
end

-- Runs fn(a, b, c, d) under the budget: true, first result | false, message, line.
local function run(fn, a, b, c, d)
    exceeded, exceededLine = false, nil
    local co = worker or create(workerBody)
    worker = nil
    local allowance = tickLimit - spent
    if allowance > instructionLimit then
        allowance = instructionLimit
    end
    callEnd = spent + allowance
    sethook(co, stepHook, "", STEP) -- also restarts the count
    local ok, r = resume(co, fn, a, b, c, d)
    if ok then
        worker = co -- suspended in yield, ready for the next call
    end
    if not rawequal(rawget(room, "state"), S.root()) then
        -- Outside the hook: adoption costs what the new root holds.
        local adopted, e = pcall(adoptRoot)
        if not adopted then
            rawset(room, "state", S.root())
            if ok then
                ok, r, co = false, e, nil
            end
        end
    end
    if ok then
        return true, r, nil
    end
    return failure(r, co)
end

local function call(hook, ...)
    local fn = rawget(env, hook)
    if fn == nil then
        return true, nil, nil
    end
    return run(fn, ...)
end

-- Python values ----------------------------------------------------------

-- Python flattens a JSON value into a shape string and the scalars in order:
-- "v" a scalar, "{" (key node)* "}" a map (keys among the scalars),
-- "[" node* "]" a list. Building the tables here keeps lists lists.
local V, LB, RB = byte("v{}", 1, 3)
local markList = S.markList

local function node(shape, pos, vals, vi)
    local c = byte(shape, pos)
    if c == V then
        return vals[vi], pos + 1, vi + 1
    end
    local t = {}
    pos = pos + 1
    if c == LB then
        while byte(shape, pos) ~= RB do
            local k = vals[vi]
            t[k], pos, vi = node(shape, pos, vals, vi + 1)
        end
    else
        local i = 0
        while byte(shape, pos) ~= 93 do -- "]"
            i = i + 1
            t[i], pos, vi = node(shape, pos, vals, vi)
        end
        markList(t)
    end
    return t, pos + 1, vi
end

local function fromPython(shape, ...)
    if shape == "v" then
        return (...) -- a scalar: no table to build
    end
    return (node(shape, 1, { ... }, 1))
end

-- Driver -------------------------------------------------------------------

local D = {}

function D.load(name, source)
    spent = 0 -- loading and onInit are not part of a tick
    scriptSource = "=" .. name
    prefix = getinfo(load("", scriptSource), "S").short_src .. ":"
    local chunk, err = load(source, scriptSource, "t", env)
    if chunk == nil then
        local line = sub(err, 1, #prefix) == prefix and tonumber(match(err, "^(%d+):", #prefix + 1))
        return false, S.validUtf8(err), line or nil
    end
    return run(chunk)
end

function D.init(shape, ...)
    spent = 0
    local config = fromPython(shape, ...)
    rawset(room, "config", config)
    local metadata = rawget(room, "metadata")
    if type(config.metadata) == "table" then
        for k, v in next, config.metadata do
            rawset(metadata, k, v)
        end
    end
    return call("onInit", room, config)
end

function D.join(shape, ...)
    local player = fromPython(shape, ...)
    rawset(rawget(room, "players"), player.clientId, player)
    return call("onPlayerJoin", room, player)
end

function D.leave(reason, shape, ...)
    local player = fromPython(shape, ...)
    local ok, r, line = call("onPlayerLeave", room, player, reason)
    rawset(rawget(room, "players"), player.clientId, nil)
    return ok, r, line
end

-- onPlayerDisconnect / onPlayerReconnect: the player keeps its seat meanwhile.
function D.presence(hook, clientId)
    local player = rawget(rawget(room, "players"), clientId)
    return call(hook, room, player)
end

-- The shapes of flat maps of scalars (most actions' data: {x = .., y = ..}),
-- built without walking the shape. Only a shortcut: any shape not listed
-- takes the general way, so Python may flatten more or fewer this way.
local FLAT = {}
for n = 0, 16 do
    FLAT["{" .. string.rep("v", n) .. "}"] = n
end
local concat = table.concat

-- Where the current step is, for Python when the driver itself fails (out
-- of memory) mid-step: the hook it was in, how many actions had run, their
-- relays.
local progress = { phase = "onAction", done = 0, relays = {} }

-- One room-tick in one call from Python: the tick's queued actions in order
-- (onAction), then onTick, then every change since the last tick.
--   step(tick, dt, resync, count, action_1 .. action_count)
-- `tick` is room.tick during the hooks (< 0 keeps room.tick: a caller outside
-- ticks, tests and tools, with a per-call budget only); `dt` nil runs the
-- actions only. Each action is its clientId, type, and data as shape and
-- scalars. It stops after an action that fails or queues room commands, so
-- that Python carries those out (a kick, say) before anything else runs;
-- Python then calls again with the rest. Returns
--   ok, message, line, relays, commands, ticked, json, path, value, ...
-- relays: one "1" (relay it to every member) or "0" per action run (an
-- absent hook relays all, a present one relays on a true result); commands:
-- the room commands waiting; ticked: onTick ran (all actions went through),
-- and then ok, message, line are onTick's and the changes follow
-- (S.collect); else they are the last action's.
function D.step(tick, dt, resync, count, ...)
    if tick >= 0 then
        setTick(tick)
    else
        spent = 0
    end
    local relays = progress.relays
    progress.phase, progress.done = "onAction", 0
    local fn = rawget(env, "onAction")
    if fn == nil then
        for i = 1, count do
            relays[i] = "1"
        end
    else
        local vals, vi = { ... }, 1
        for i = 1, count do
            local clientId, actionType, shape = vals[vi], vals[vi + 1], vals[vi + 2]
            local data
            local n = FLAT[shape]
            if n then
                data, vi = {}, vi + 3
                for _ = 1, n do
                    data[vals[vi]] = vals[vi + 1]
                    vi = vi + 2
                end
            else
                data, _, vi = node(shape, 1, vals, vi + 3)
            end
            local ok, r, line = run(fn, room, clientId, { type = actionType, data = data })
            relays[i] = ok and r ~= nil and r ~= false and "1" or "0"
            progress.done = i
            local waiting = rawget(pending, "n")
            if not ok or waiting > 0 then
                return ok, ok and nil or r, line, concat(relays, "", 1, i), waiting, false
            end
        end
        vals = nil -- onTick may use the memory the actions' data took
    end
    if dt == nil then
        return true, nil, nil, concat(relays, "", 1, count), 0, false
    end
    progress.phase = "onTick"
    local ok, msg, line = call("onTick", room, dt, tick)
    if ok then
        msg = nil -- whatever onTick returned
    end
    if resync then
        S.resync()
    end
    spent = 0 -- the next tick (its actions come first) starts a fresh budget
    return ok, msg, line, concat(relays, "", 1, count), rawget(pending, "n"), true, S.collect()
end

-- Every change since the last tick or collect, without running onTick:
-- true, nil, nil, then what D.step returns after its ticked flag.
function D.collect(resync)
    if resync then
        S.resync()
    end
    return true, nil, nil, S.collect()
end

-- ok, admitted, reason | false, message, line. No hook admits everyone; a
-- hook returning false (and optionally a reason string) refuses the player.
function D.joinAttempt(shape, ...)
    local fn = rawget(env, "onJoinAttempt")
    if fn == nil then
        return true, true, nil
    end
    local ok, r, line = run(function(rm, p)
        return { fn(rm, p) }
    end, room, fromPython(shape, ...))
    if not ok then
        return ok, r, line
    end
    if rawget(r, 1) == false then
        local why = rawget(r, 2)
        return true, false, type(why) == "string" and S.validUtf8(why) or nil
    end
    return true, true, nil
end

-- ok, verdict | false, message, line: false drops the message, a string
-- replaces it, anything else (or no hook) keeps it.
function D.chat(clientId, message)
    local fn = rawget(env, "onChat")
    if fn == nil then
        return true, nil, nil
    end
    local ok, r, line = run(fn, room, clientId, message)
    if not ok then
        return ok, r, line
    end
    if r == false then
        return true, false, nil
    elseif type(r) == "string" then
        return true, S.validUtf8(r), nil
    end
    return true, nil, nil
end

function D.dispose()
    return call("onDispose", room)
end

-- Live reload: this fresh runtime takes over a running room. The state is
-- what clients already have, so adopting it records no change; no hook runs.
function D.restore(tick, shape, ...)
    rawset(room, "state", S.replaceRoot(fromPython(shape, ...)))
    setTick(tick)
    S.collect()
end

function D.configure(shape, ...)
    rawset(room, "config", fromPython(shape, ...))
end

D.read = S.read
D.drain = drainCommands
D.pending = pending
D.progress = progress

return D
