-- tictactoe.lua: two players take turns on a 3 x 3 board.
--
-- Shows turn order and move validation on the server (clients cannot cheat),
-- room:lock() once both seats are taken, room:send() to answer one player,
-- room:broadcast() for an event, and the result in the room's metadata (what
-- list_rooms shows). Actions: {type = "place", data = {cell = 0..8}}.

local LINES = {
    { 1, 2, 3 }, { 4, 5, 6 }, { 7, 8, 9 }, -- rows
    { 1, 4, 7 }, { 2, 5, 8 }, { 3, 6, 9 }, -- columns
    { 1, 5, 9 }, { 3, 5, 7 }, -- diagonals
}

function onInit(room)
    -- Cells hold "", "X" or "O"; clients see a list of 9 strings (index 0..8).
    room.state.board = list("", "", "", "", "", "", "", "", "")
    room.state.seats = list() -- clientIds; the first one plays X and starts
    room.state.turn = "" -- whose turn it is ("" until two players sit)
    room.state.winner = "" -- a clientId, "draw", or "" while playing
    room:setMetadata("status", "waiting")
end

function onJoinAttempt(room, player)
    if #room.state.seats >= 2 then
        return false, "both seats are taken"
    end
end

function onPlayerJoin(room, player)
    local seats = room.state.seats
    seats[#seats + 1] = player.clientId
    if #seats == 2 then
        room:lock() -- nobody else gets in: not even to watch (spectators come later)
        room.state.turn = seats[1]
        room:setMetadata("status", "playing")
    end
end

-- The winning mark ("X"/"O"), "draw" when the board is full, or nil.
local function result(board)
    for _, line in ipairs(LINES) do
        local mark = board[line[1]]
        if mark ~= "" and mark == board[line[2]] and mark == board[line[3]] then
            return mark
        end
    end
    for i = 1, 9 do
        if board[i] == "" then
            return nil
        end
    end
    return "draw"
end

local function finish(room, winner)
    room.state.winner = winner
    room.state.turn = ""
    room:setMetadata("status", "finished")
    room:setMetadata("result", winner)
    room:broadcast("game_over", { winner = winner })
end

function onAction(room, clientId, action)
    if action.type ~= "place" then
        return false
    end
    local state = room.state
    if state.winner ~= "" or state.turn ~= clientId then
        room:send(clientId, "rejected", { reason = "not your turn" })
        return false
    end
    local cell = type(action.data) == "table" and action.data.cell
    if math.type(cell) ~= "integer" or cell < 0 or cell > 8 or state.board[cell + 1] ~= "" then
        room:send(clientId, "rejected", { reason = "pick an empty cell 0..8" })
        return false
    end
    local seats = state.seats
    state.board[cell + 1] = seats[1] == clientId and "X" or "O"
    local outcome = result(state.board)
    if outcome == "draw" then
        finish(room, "draw")
    elseif outcome then
        finish(room, clientId)
    else
        state.turn = seats[1] == clientId and seats[2] or seats[1]
    end
    return false -- the board reaches both players through the state delta
end

function onPlayerLeave(room, player, reason)
    local state = room.state
    if state.winner == "" and #state.seats == 2 then
        -- Leaving a game in progress forfeits it.
        local other = state.seats[1] == player.clientId and state.seats[2] or state.seats[1]
        finish(room, other)
    end
end
