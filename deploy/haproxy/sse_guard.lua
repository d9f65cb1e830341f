-- sse-guard: an HAProxy 2.6 Lua filter that ends a server-sent-events stream cut by a replica's
-- death with an error event and a clean end of the chunked body, instead of a truncated one.
--
-- Why a TCP-mode filter: in HTTP mode, when the server side of a response aborts mid-body,
-- HAProxy's response analyser stops without calling http_payload or http_end again, and the
-- Channel given to end_analyze cannot be written in HTTP mode ("Cannot manipulate HAProxy channels
-- in HTTP mode"). So haproxy.cfg.in puts a TCP-mode frontend (this filter) in front of the HTTP
-- frontend: when the HTTP layer closes the connection in the middle of a chunked text/event-stream
-- response, this filter still sees the close (tcp_payload with the input side closed) and
-- appends, at the chunk boundary where the response stopped,
--     data: {"error": {"message": "...", "type": "server_error", "code": 502}}\n\n
-- as one chunk, then the last chunk "0\r\n\r\n". OpenAI clients raise an APIError on a stream
-- event that carries an "error" object; the body is no longer truncated.
--
-- It follows the HTTP/1.x response framing of the connection (status line and headers, chunked or
-- Content-Length bodies, 1xx interim responses, keep-alive) reading only heads and chunk-size
-- lines; body bytes are skipped, except the last two of each piece of an event stream (to know
-- whether the stream stopped between two events). Anything it does not understand (HTTP/2, an
-- upgrade, a body delimited by the close, a malformed line) makes it stand aside for the rest of
-- the connection: it never changes bytes, it only adds them at the end of a cut event stream.
-- It does not follow requests, so after a HEAD request it may misread the next response and stand
-- aside (tailor's event streams answer POSTs). A response whose bytes stop inside a chunk, or an
-- HTTP layer that resets the connection instead of closing it, is left as it is (truncated).

local HEAD, CHUNK_SIZE, CHUNK_DATA, CHUNK_CRLF, TRAILERS, BODY, PASS = 1, 2, 3, 4, 5, 6, 7

local MAX_LINE = 65536  -- a head or a chunk-size line longer than this: stand aside
local WINDOW = 4096     -- bytes copied per look for a line end

local ERROR_EVENT = 'data: {"error": {"message": "upstream replica failed mid-stream; ' ..
                    'the response is incomplete", "type": "server_error", "code": 502}}\n\n'

local Guard = {}
Guard.id = "sse-guard"
Guard.__index = Guard

function Guard:new()
  return setmetatable({state = HEAD, pending = "", remaining = 0, sse = false, tail = "", done = false}, Guard)
end

function Guard:start_analyze(txn, chn)
  if chn:is_resp() then
    filter.register_data_filter(self, chn)
  end
end

-- One response head (status line and header fields, without the final empty line).
function Guard:on_head(head)
  local code = head:match("^HTTP/1%.%d (%d%d%d)")
  if not code then
    self.state = PASS
    return
  end
  code = tonumber(code)
  local chunked, length, sse = false, nil, false
  for name, value in head:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
    name = name:lower()
    if name == "transfer-encoding" then
      chunked = value:lower():match("chunked%s*$") ~= nil
    elseif name == "content-length" then
      length = tonumber(value:match("^%d+"))
    elseif name == "content-type" then
      sse = value:lower():match("^text/event%-stream") ~= nil
    end
  end
  if code == 101 then
    self.state = PASS  -- a tunnel follows
  elseif code < 200 or code == 204 or code == 304 then
    self.state = HEAD  -- no body: the next response follows
  elseif chunked then
    self.state, self.sse, self.tail = CHUNK_SIZE, sse, "\n\n"
  elseif length then
    self.state, self.remaining, self.sse = (length > 0) and BODY or HEAD, length, false
  else
    self.state = PASS  -- delimited by the close: nothing can be added after it
  end
end

-- One line (without its CRLF) in a line-oriented state.
function Guard:on_line(line)
  if self.state == CHUNK_SIZE then
    local size = tonumber(line:match("^%s*(%x+)%s*[;]?") or "", 16)
    if not size then
      self.state = PASS
    elseif size == 0 then
      self.state = TRAILERS
    else
      self.state, self.remaining = CHUNK_DATA, size
    end
  elseif self.state == CHUNK_CRLF then
    self.state = (line == "") and CHUNK_SIZE or PASS
  elseif self.state == TRAILERS then
    if line == "" then
      self.state = HEAD
    end
  end
end

-- Called with each piece of response data; forwards everything (returns nothing).
function Guard:tcp_payload(txn, chn)
  local avail = chn:input()
  if avail == 0 then
    -- The HTTP layer closed the connection and everything before was sent: if a chunked event
    -- stream stopped at a chunk boundary, end it with the error event and the last chunk.
    if not self.done and self.state == CHUNK_SIZE and self.pending == "" and self.sse and
       chn:output() == 0 and not chn:may_recv() then
      self.done = true
      local event = ERROR_EVENT
      if self.tail ~= "\n\n" and self.tail ~= "\r\r" then
        event = "\n\n" .. event  -- cut inside an event: end it first
      end
      chn:append(string.format("%x\r\n%s\r\n0\r\n\r\n", #event, event))
      core.Warning("sse-guard: an event stream was cut mid-way (its server closed); " ..
                   "sent the client an error event and the end of the body")
    end
    return
  end
  local pos = 0
  while pos < avail and self.state ~= PASS do
    if self.state == CHUNK_DATA or self.state == BODY then
      local n = math.min(self.remaining, avail - pos)
      if self.sse and n > 0 then
        local k = math.min(n, 2)
        self.tail = (self.tail .. chn:data(pos + n - k, k)):sub(-2)
      end
      pos = pos + n
      self.remaining = self.remaining - n
      if self.remaining == 0 then
        self.state = (self.state == CHUNK_DATA) and CHUNK_CRLF or HEAD
      end
    else
      local piece = chn:data(pos, math.min(WINDOW, avail - pos))
      local text = self.pending .. piece
      local term = (self.state == HEAD) and "\r\n\r\n" or "\r\n"
      -- Search from just before the new bytes (a terminator may straddle two pieces).
      local at = text:find(term, math.max(1, #self.pending - #term + 2), true)
      if not at then
        self.pending = text
        pos = pos + #piece
        if #self.pending > MAX_LINE then
          self.state = PASS
        end
      else
        local line = text:sub(1, at - 1)
        pos = pos + (at + #term - 1 - #self.pending)
        self.pending = ""
        if self.state == HEAD then
          self:on_head(line)
        else
          self:on_line(line)
        end
      end
    end
  end
end

core.register_filter("sse-guard", Guard, function(guard, args)
  return guard
end)
