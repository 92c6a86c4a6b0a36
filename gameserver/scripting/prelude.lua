-- prelude.lua: the sandbox a room script runs in, and the driver Python calls.
--
-- Loaded once per runtime with (S, roomId, instructionLimit), S being the
-- module state.lua returned. Returns the driver: one function per entry point,
-- each a single Lua call from Python. Every driver function returns
-- `ok, value-or-message, line` and never raises for a script's fault.
--
-- The budget. Script code runs in a worker coroutine, and the count hook is
-- set on that coroutine only (hooks are per thread). When it fires it raises,
-- and re-arms itself to raise at every following instruction of the worker,
-- script or state.lua alike: a script that catches the error with pcall never
-- runs another instruction, and the error ends the coroutine. The driver runs
-- on the main thread, out of the hook's reach, so it always gets control back.
-- That is why state.lua keeps every write safe to interrupt at any instruction.

local S, roomId, instructionLimit = ...

local sethook, getinfo = debug.sethook, debug.getinfo
local load, rawget, type, tostring, tonumber = load, rawget, type, tostring, tonumber
local create, resume, yield = coroutine.create, coroutine.resume, coroutine.yield
local next, setmetatable, error, pcall = next, setmetatable, error, pcall
local pack, unpack = table.pack, table.unpack
local byte, format, sub, match = string.byte, string.format, string.sub, string.match

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
    unpack = table.unpack,
    xpcall = safeXpcall,
    -- Copies, so a script patching them cannot change what this file calls.
    math = copy(math),
    string = copy(string),
    table = copy(table),
    utf8 = copy(utf8),
}
env._G = env

-- Nothing below needs these again; scripts never see _G, this is belt and braces.
for _, name in next, { "collectgarbage", "debug", "dofile", "io", "load", "loadfile", "os", "package", "python", "require" } do
    _G[name] = nil
end

local room = { id = roomId, tick = 0, state = S.root() }

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

local function firstHook()
    exceeded = true
    exceededLine = scriptLine(nil, 2) -- from this hook outwards, the first script frame
    sethook(stopHook, "", 1)
    error(BUDGET, 0)
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
    room.state = S.replaceRoot(room.state)
end

-- Runs fn(a, b, c, d) under the budget: true, first result | false, message, line.
local function run(fn, a, b, c, d)
    exceeded, exceededLine = false, nil
    local co = worker or create(workerBody)
    worker = nil
    sethook(co, firstHook, "", instructionLimit) -- also restarts the count
    local ok, r = resume(co, fn, a, b, c, d)
    if ok then
        worker = co -- suspended in yield, ready for the next call
    end
    if rawget(room, "state") ~= S.root() then
        -- Outside the hook: adoption costs what the new root holds.
        local adopted, e = pcall(adoptRoot)
        if not adopted then
            room.state = S.root()
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
    local config = fromPython(shape, ...)
    room.config = config
    return call("onInit", room, config)
end

function D.join(shape, ...)
    return call("onPlayerJoin", room, fromPython(shape, ...))
end

function D.leave(reason, shape, ...)
    return call("onPlayerLeave", room, fromPython(shape, ...), reason)
end

-- ok, relay: an absent hook relays; a present one relays when it returns a true value.
-- `tick` is the tick applying the action (room.tick during onAction); < 0 keeps room.tick.
function D.action(tick, clientId, actionType, shape, ...)
    if tick >= 0 then
        room.tick = tick
    end
    local fn = rawget(env, "onAction")
    if fn == nil then
        return true, true, nil
    end
    local action = { type = actionType, data = fromPython(shape, ...) }
    local ok, r, line = run(fn, room, clientId, action)
    if ok then
        return true, r ~= nil and r ~= false, nil
    end
    return ok, r, line
end

-- Runs onTick, then returns ok, message, line and every change since the
-- last tick (S.collect); `resync` sends the whole state instead.
function D.tick(dt, tick, resync)
    room.tick = tick
    local ok, msg, line = call("onTick", room, dt, tick)
    if ok then
        msg = nil -- whatever onTick returned
    end
    if resync then
        S.resync()
    end
    return ok, msg, line, S.collect()
end

-- Every change since the last tick or collect, without running onTick:
-- the same results as D.tick after its ok, message, line.
function D.collect(resync)
    if resync then
        S.resync()
    end
    return true, nil, nil, S.collect()
end

D.read = S.read

return D
