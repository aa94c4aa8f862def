"""The atomic step of the label join, run in Redis: decide and write the labels of one hash tag.

The codes it answers per label, as :mod:`stream_scorer.labels.join` reads them: FIRST (joined), DUPLICATE (the
same label again), REPLACED (a later, different label wins), STALE (an older, different label is ignored),
REDELIVERED (this very message again), TAKEN (a held label another process claimed first).
"""

from __future__ import annotations

import hashlib

FIRST, DUPLICATE, REPLACED, STALE, REDELIVERED, TAKEN = range(6)

# KEYS[1]: the held set of the call's hash tag; then per item: the label key, the coverage counter, the held
# payload key (all of the tag's slot). ARGV[1], ARGV[2]: the label and counter TTLs (ms); then per item: the held
# member to claim ("" when the label is not a held one), the label, its time, its source. Returns per item: a
# code and the earlier label.
JOIN_SCRIPT = """
local label_ttl, counter_ttl = ARGV[1], ARGV[2]
local out = {}
for i = 0, (#KEYS - 1) / 3 - 1 do
  local label_key, counter_key, held_key = KEYS[2 + 3 * i], KEYS[3 + 3 * i], KEYS[4 + 3 * i]
  local member, value, at, source = ARGV[3 + 4 * i], ARGV[4 + 4 * i], ARGV[5 + 4 * i], ARGV[6 + 4 * i]
  local code, previous = 0, -1
  if member ~= '' and redis.call('ZREM', KEYS[1], member) == 0 then
    code = 5
  else
    if member ~= '' then redis.call('DEL', held_key) end
    local stored = redis.call('GET', label_key)
    if not stored then
      redis.call('SET', label_key, value .. ':' .. at .. ':' .. source, 'PX', label_ttl)
      redis.call('INCR', counter_key)
      redis.call('PEXPIRE', counter_key, counter_ttl)
    else
      local v, t, s = string.match(stored, '^([^:]*):([^:]*):(.*)$')
      previous = tonumber(v)
      if source ~= '' and s == source then
        code = 4
      elseif v == value then
        code = 1
      elseif tonumber(t) > tonumber(at) then
        code = 3
      else
        code = 2
        redis.call('SET', label_key, value .. ':' .. at .. ':' .. source, 'PX', label_ttl)
      end
    end
  end
  out[#out + 1] = code
  out[#out + 1] = previous
end
return out
"""

JOIN_SCRIPT_SHA = hashlib.sha1(JOIN_SCRIPT.encode()).hexdigest()
