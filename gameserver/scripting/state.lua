-- state.lua: room.state as write-tracking proxies, and the delta collector.
--
-- Why: converting the whole state table to Python every tick costs more than
-- the rest of a tick, so writes record which (table, key) pairs changed and the
-- collector reads back only those.
--
-- Every table inside the state is a *proxy*: a table kept empty, whose own
-- metatable (one per proxy, found through M) is also its record:
--   data    the contents; child tables are proxies too
--   kind    MAP or LIST, fixed for the proxy's life
--   parent  the proxy holding this one (nil for a root)
--   key     the key under which parent holds it
--   path    its wire path, and paths[k] that of its key k (cached: see below)
-- `__index = data` makes reads as fast as on a plain table; writes go
-- through `newindex`, which validates, adopts tables and marks the key dirty.
--
-- Invariants the collector relies on:
--   * proxies never move: storing a proxy anywhere stores a deep copy, so a
--     proxy's key and paths never change.
--   * a proxy is attached iff each link up to the current root is confirmed
--     by the parent's data (a replaced or removed proxy fails that check, so
--     writes to it are dropped without any bookkeeping at detach time).
--   * every change to some data[k] since the last collect is preceded by an
--     entry dirty[proxy][k], or one for a link above it, or by rootReplaced.
--     The entry is made before the change, and a new table is built before it
--     is linked in, so the instruction budget (which may stop this code at any
--     instruction, see prelude.lua) or a memory error cannot lose a change.
--
-- list(...) makes a table that enters the state as a JSON array even when
-- empty; any other empty table enters as a map. A table's kind never changes.

local next, type, rawget, rawset, rawequal, rawlen = next, type, rawget, rawset, rawequal, rawlen
local setmetatable, getmetatable, error, select = setmetatable, getmetatable, error, select
local format, find, gsub, sub, char = string.format, string.find, string.gsub, string.sub, string.char
local concat, unpack = table.concat, table.unpack
local mathtype, tointeger, huge = math.type, math.tointeger, math.huge
local utf8len = utf8.len

local MAP, LIST = "map", "list"

local M = setmetatable({}, { __mode = "k" }) -- proxy -> its metatable/record
local listMarks = setmetatable({}, { __mode = "k" }) -- plain tables made by list()
local root -- the current root proxy (always a MAP)
local dirty = {} -- proxy -> { key -> whether the key existed before its first write }
local rootReplaced = false
-- Map keys that are valid strings already: the common write skips checking.
local goodKeys, goodCount = {}, 0

-- Strings ---------------------------------------------------------------

-- s with each byte that does not start valid UTF-8 replaced by U+FFFD.
local function validUtf8(s)
    if utf8len(s) then
        return s
    end
    local out, n, i = {}, 0, 1
    while true do
        local ok, bad = utf8len(s, i)
        if ok then
            out[n + 1] = sub(s, i)
            return concat(out)
        end
        out[n + 1], out[n + 2] = sub(s, i, bad - 1), "\u{FFFD}"
        n, i = n + 2, bad + 1
    end
end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
for c = 0, 31 do
    ESCAPES[char(c)] = ESCAPES[char(c)] or format("\\u%04x", c)
end
ESCAPES["\127"] = "\\u007f"

local function jsonString(s)
    if not utf8len(s) then
        s = validUtf8(s)
    end
    if find(s, '[\0-\31"\\\127]') then
        s = gsub(s, '[\0-\31"\\\127]', ESCAPES)
    end
    return '"' .. s .. '"'
end

-- Path segment of a map key: `~` -> `~0`, `.` -> `~1`.
local function escapeKey(k)
    if find(k, "[~.]") then
        k = gsub(gsub(k, "~", "~0"), "%.", "~1")
    end
    return k
end

-- Keys ------------------------------------------------------------------

-- The string a map stores key k under, or nil if k cannot be a map key.
-- Maps are JSON objects, so number keys become strings (1 -> "1") and a read
-- with 1 finds "1"; "" is refused because the root's path "" is taken.
local function normKey(k)
    local tk = type(k)
    if tk == "string" then
        if k == "" then
            return nil
        end
        return validUtf8(k)
    elseif tk == "number" then
        local i = tointeger(k)
        if i then
            return format("%d", i)
        end
        if k == k then
            return format("%.17g", k)
        end
    end
    return nil
end

local function mapKey(k)
    local nk = normKey(k)
    if nk == nil then
        if k == "" then
            error("room.state keys must not be empty strings", 0)
        end
        error(format("room.state keys must be strings or numbers, not %s", k ~= k and "NaN" or type(k)), 0)
    end
    return nk
end

-- Metatable of a map's data: a read that misses retries with the key
-- normalised the way a write would have stored it.
local MAP_DATA = {
    __index = function(data, k)
        if type(k) == "string" and utf8len(k) then
            return nil
        end
        local nk = normKey(k)
        if nk ~= nil and nk ~= k then
            return rawget(data, nk)
        end
        return nil
    end,
}

-- Proxies ---------------------------------------------------------------

local newindex, build -- defined below

local function proxyLen(p)
    return rawlen(M[p].data)
end

local function proxyPairs(p)
    return next, M[p].data, nil
end

local function newRecord(data, kind, parent, key)
    if kind == MAP then
        setmetatable(data, MAP_DATA)
    end
    return {
        __index = data,
        __newindex = newindex,
        __len = proxyLen,
        __pairs = proxyPairs,
        __metatable = "room.state", -- getmetatable() shows this, never the record
        data = data,
        kind = kind,
        parent = parent,
        key = key,
    }
end

local function badValue(tv)
    error(format("room.state cannot hold a %s value", tv), 0)
end

-- MAP or LIST for a plain table about to enter the state.
local function kindOf(t, forceMap)
    local count, max, seq = 0, 0, true
    for k in next, t do
        if mathtype(k) ~= "integer" or k < 1 then
            seq = false
            break
        end
        count = count + 1
        if k > max then
            max = k
        end
    end
    seq = seq and count == max
    if listMarks[t] then
        if forceMap then
            error("room.state must be a map, not a list", 0)
        end
        if not seq then
            error("a list() table can only hold the keys 1..n, without holes", 0)
        end
        return LIST
    end
    if forceMap or count == 0 or not seq then
        return MAP -- an unmarked empty table is a map: kinds never flip later
    end
    return LIST
end

-- A fresh proxy holding a deep copy of proxy src.
local function copyProxy(src, parent, key, forceMap)
    local sm = M[src]
    if forceMap and sm.kind == LIST then
        error("room.state must be a map, not a list", 0)
    end
    local target, data = {}, {}
    for k, v in next, sm.data do
        if type(v) == "table" then
            v = copyProxy(v, target, k)
        end
        rawset(data, k, v)
    end
    local record = newRecord(data, sm.kind, parent, key)
    M[target] = record
    return setmetatable(target, record)
end

-- The proxy to store for table t under parent[key]. A plain table is turned
-- into the proxy itself (its fields move to a fresh data table), so the
-- script's own references keep reaching the state; a proxy or a table with a
-- metatable is deep-copied instead. t's fields move only once everything is
-- built, so a failure (bad value, cycle, memory) leaves them in place; nested
-- tables converted by then read as before but are detached.
build = function(t, parent, key, inPlace, visiting, forceMap)
    if M[t] then
        return copyProxy(t, parent, key, forceMap)
    end
    if visiting[t] then
        error("room.state cannot hold a table that contains itself", 0)
    end
    if getmetatable(t) ~= nil then
        inPlace = false
    end
    local kind = kindOf(t, forceMap)
    local target = inPlace and t or {}
    local data = {}
    visiting[t] = true
    for k, v in next, t do
        if kind == MAP then
            local nk = mapKey(k)
            if rawget(data, nk) ~= nil then
                error(format("room.state: two keys of one table are both stored as %q", nk), 0)
            end
            k = nk
        end
        local tv = type(v)
        if tv == "table" then
            v = build(v, target, k, inPlace, visiting, false)
        elseif tv ~= "string" and tv ~= "number" and tv ~= "boolean" then
            badValue(tv)
        end
        rawset(data, k, v)
    end
    visiting[t] = nil
    local record = newRecord(data, kind, parent, key)
    M[target] = record
    if inPlace then
        for k in next, t do
            rawset(t, k, nil)
        end
        listMarks[t] = nil
    end
    return setmetatable(target, record)
end

-- The list index a write to key k may use, or a Lua error. Lists grow by
-- appending at #t+1 and shrink by setting #t to nil, nothing else.
local function listIndex(k, v, n)
    local i = type(k) == "number" and tointeger(k)
    if not i then
        error(format("list index must be an integer, not %s", type(k) == "number" and k or type(k)), 0)
    end
    if v == nil then
        if i ~= n or n == 0 then
            error(format("cannot set index %d of a list of length %d to nil: only the last element can be removed (table.remove does that)", i, n), 0)
        end
    elseif i < 1 or i > n + 1 then
        error(format("list index %d out of range: a list of length %d takes indexes 1..%d", i, n, n + 1), 0)
    end
    return i
end

-- The one hot path of the state: every write by a script lands here.
newindex = function(p, k, v)
    local m = M[p]
    local data = m.data
    local resized = false
    if m.kind == LIST then
        local n = rawlen(data)
        k = listIndex(k, v, n)
        resized = v == nil or k == n + 1
    elseif not goodKeys[k] then
        if type(k) ~= "string" or k == "" or not utf8len(k) then
            k = mapKey(k)
        elseif goodCount < 1024 and #k <= 64 then -- bounded: it keeps its keys alive
            goodKeys[k], goodCount = true, goodCount + 1
        end
    end
    local old = data[k] -- a miss on a normalised key is nil (see MAP_DATA)
    local tv = type(v)
    if tv == "number" or tv == "string" or tv == "boolean" then
        if old == v and mathtype(old) == mathtype(v) then
            return -- unchanged scalar (1 and 1.0 differ on the wire)
        end
    elseif tv == "table" then
        if rawequal(old, v) then
            return -- state.a = state.a
        end
        v = build(v, p, k, true, {}, false)
    elseif tv == "nil" then
        if old == nil then
            return
        end
    else
        badValue(tv)
    end
    local markP, markK = p, k
    if resized then
        -- A length change sends the whole list: mark its link in the parent.
        local parent = m.parent
        local pm = parent and M[parent]
        if pm == nil or rawget(pm.data, m.key) ~= p then
            data[k] = v -- a detached list: nothing to send
            return
        end
        markP, markK, old = parent, m.key, true
    end
    local keys = dirty[markP]
    if keys == nil then
        keys = {}
        dirty[markP] = keys
    end
    if keys[markK] == nil then
        keys[markK] = old ~= nil -- whether the key existed before its first write
    end
    data[k] = v -- raw: data tables have no __newindex
end

-- JSON ------------------------------------------------------------------

local function jsonNumber(v)
    if mathtype(v) == "integer" then
        return format("%d", v)
    end
    if v ~= v or v == huge or v == -huge then
        return "null" -- JSON has no NaN or infinity
    end
    local s = format("%.17g", v) -- 17 digits round-trip every double
    if not find(s, "[.e]") then
        s = s .. ".0" -- keep a float a float in Python
    end
    return s
end

-- Appends the JSON of value v to buf[n+1..]; returns the new n.
local function encode(v, buf, n)
    local tv = type(v)
    if tv == "string" then
        buf[n + 1] = jsonString(v)
        return n + 1
    elseif tv == "number" then
        buf[n + 1] = jsonNumber(v)
        return n + 1
    elseif tv == "boolean" then
        buf[n + 1] = v and "true" or "false"
        return n + 1
    end
    local m = M[v]
    local data = m.data
    if m.kind == LIST then
        buf[n + 1] = "["
        n = n + 1
        for i = 1, rawlen(data) do
            if i > 1 then
                buf[n + 1] = ","
                n = n + 1
            end
            n = encode(rawget(data, i), buf, n)
        end
        buf[n + 1] = "]"
        return n + 1
    end
    buf[n + 1] = "{"
    n = n + 1
    local first = true
    for k, x in next, data do
        buf[n + 1] = first and jsonString(k) .. ":" or "," .. jsonString(k) .. ":"
        first = false
        n = encode(x, buf, n + 1)
    end
    buf[n + 1] = "}"
    return n + 1
end

-- Collection --------------------------------------------------------------

local function pathOf(p, m)
    local path = m.path
    if path == nil then
        local parent = m.parent
        if parent == nil then
            path = ""
        else
            local pm = M[parent]
            local seg = pm.kind == LIST and format("%d", m.key - 1) or escapeKey(m.key)
            local pp = pathOf(parent, pm)
            path = pp == "" and seg or pp .. "." .. seg
        end
        m.path = path
    end
    return path
end

-- The path of p if it is attached and no link above it is dirty, else nil.
local function livePath(p, m)
    local c, cm = p, m
    while c ~= root do
        local parent = cm.parent
        local pm = parent and M[parent]
        if pm == nil or rawget(pm.data, cm.key) ~= c then
            return nil -- detached
        end
        local keys = dirty[parent]
        if keys and keys[cm.key] ~= nil then
            return nil -- the ancestor's change carries this one
        end
        c, cm = parent, pm
    end
    return pathOf(p, m)
end

-- Scalar sets leave collect() as native values, which lupa converts without
-- formatting numbers (slow: snprintf). Past this many, the rest go as JSON,
-- since every returned value takes a slot of Lua's stack.
local MAX_NATIVE = 1000
local out = {} -- collect()'s scalar sets: path, value, path, value, ...

-- Appends one change to the JSON array buf (made on first use).
local function jsonChange(buf, nb, path, v)
    if buf == nil then
        buf, nb = { "[" }, 0
    else
        buf[nb + 1] = ","
    end
    buf[nb + 2] = '{"path":' .. jsonString(path)
    if v == nil then
        buf[nb + 3] = ',"operation":"delete"}'
        return buf, nb + 3
    end
    buf[nb + 3] = ',"operation":"set","value":'
    nb = encode(v, buf, nb + 3) + 1
    buf[nb] = "}"
    return buf, nb
end

-- The wire path of key k of proxy p, cached on p's record (p never moves).
local function keyPath(m, path, k)
    local paths = m.paths
    if paths == nil then
        paths = {}
        m.paths = paths
    end
    local kp = paths[k]
    if kp == nil then
        local seg = m.kind == LIST and format("%d", k - 1) or escapeKey(k)
        kp = path == "" and seg or path .. "." .. seg
        paths[k] = kp
    end
    return kp
end

local S = {}

-- Every change since the last call: a JSON array (or nil) of the deletes,
-- table-valued sets and overflow, then path, value, path, value, ... for the
-- scalar sets. Values are read now; NaN and infinities become nil (None).
function S.collect()
    if not rootReplaced and next(dirty) == nil then
        return nil
    end
    local buf, nb, n = nil, 0, 0
    if rootReplaced then
        buf, nb = jsonChange(nil, 0, "", root)
    else
        for p, keys in next, dirty do
            local m = M[p]
            local path = m and livePath(p, m)
            if path then
                local data = m.data
                for k, existed in next, keys do
                    local v = data[k]
                    local paths = m.paths
                    local kp = paths and paths[k] or keyPath(m, path, k)
                    local tv = type(v)
                    if v == nil then
                        m.paths[k] = nil -- keeps the cache no bigger than the keys
                        if existed then -- a key born and gone this tick sends nothing
                            buf, nb = jsonChange(buf, nb, kp, nil)
                        end
                    elseif tv == "table" or n >= 2 * MAX_NATIVE then
                        buf, nb = jsonChange(buf, nb, kp, v)
                    else
                        if tv == "string" then
                            v = validUtf8(v)
                        elseif tv == "number" and (v ~= v or v == huge or v == -huge) then
                            v = nil -- JSON has no NaN or infinity
                        end
                        out[n + 1], out[n + 2] = kp, v
                        n = n + 2
                    end
                end
            end
        end
    end
    local json
    if buf then
        buf[nb + 1] = "]"
        json = concat(buf, "", 1, nb + 1)
    end
    dirty, rootReplaced = {}, false
    return json, unpack(out, 1, n)
end

-- The next collect() sends the whole root: for when the caller lost a batch.
function S.resync()
    rootReplaced = true
end

-- JSON of the whole state (the slow path, for snapshots).
function S.read()
    local buf = {}
    return concat(buf, "", 1, encode(root, buf, 0))
end

function S.root()
    return root
end

-- Makes table t (which a script assigned to room.state) the new root.
function S.replaceRoot(t)
    if type(t) ~= "table" then
        error(format("room.state must be a table, not %s", type(t)), 0)
    end
    if rawequal(t, root) then
        return root
    end
    root = build(t, nil, nil, true, {}, true)
    rootReplaced, dirty = true, {}
    return root
end

-- list(...) -> a new table holding the arguments that enters the state as a
-- JSON array, even when empty; a plain empty table enters as a map.
function S.list(...)
    local n = select("#", ...)
    local t = { ... }
    for i = 1, n do
        if t[i] == nil then
            error("list() elements must not be nil", 2)
        end
    end
    listMarks[t] = true
    return t
end

-- Marks a table the Python bridge built from a JSON array.
function S.markList(t)
    listMarks[t] = true
    return t
end

-- next() that walks a proxy's contents (scripts get this as `next`).
function S.next(t, k)
    local m = M[t]
    if m then
        return next(m.data, k)
    end
    return next(t, k)
end

-- Whether t is a state proxy (whose metamethods are all Lua functions).
function S.isProxy(t)
    return M[t] ~= nil
end

function S.rawlen(t)
    local m = M[t]
    if m then
        return rawlen(m.data)
    end
    return rawlen(t)
end

S.validUtf8 = validUtf8

root = build({}, nil, nil, true, {}, true)

return S
