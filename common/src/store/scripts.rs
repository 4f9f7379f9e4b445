//! The job store's Lua scripts: each reads and writes a job's keys in one atomic step (record a result
//! once, claim a run, end a run, change a status only from an expected one).

pub(super) const RECORD_RESULT: &str = r#"
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {-1, 0} end
if status == 'failed' then return {-2, 0} end
if status == 'cancelled' then return {-3, 0} end
if status == 'completed' then
  redis.call('HINCRBY', KEYS[1], 'duplicates', 1)
  return {0, 0}
end
local total = tonumber(redis.call('HGET', KEYS[1], 'total_chunks'))
redis.call('HDEL', KEYS[3], ARGV[5])
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then
  redis.call('HINCRBY', KEYS[1], 'duplicates', 1)
  local done = tonumber(redis.call('HGET', KEYS[1], 'chunks_done'))
  return {0, done == total and 1 or 0}
end
local done = redis.call('HINCRBY', KEYS[1], 'chunks_done', 1)
redis.call('HINCRBY', KEYS[1], 'items_done', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'items_failed', ARGV[4])
return {1, done == total and 1 or 0}
"#;

pub(super) const CLAIM_RUN: &str = r#"
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'', 0, '', 0} end
if status ~= 'submitting' and status ~= 'running' then return {status, 0, '', 0} end
local stages = redis.call('HGET', KEYS[1], 'stages')
if stages then
  local now = redis.call('TIME')
  redis.call('HSETNX', KEYS[1], 's' .. ARGV[2] .. '.started_ms', now[1] * 1000 + math.floor(now[2] / 1000))
end
return {status, redis.call('HINCRBY', KEYS[2], ARGV[1], 1), stages or '',
  tonumber(redis.call('HGET', KEYS[1], 'source_chunks') or '0')}
"#;

pub(super) const END_RUN: &str = r#"
local runs = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if runs > 0 then redis.call('HINCRBY', KEYS[1], ARGV[1], -1) end
return 0
"#;

pub(super) const SET_STATUS_IF: &str = r#"
if redis.call('HGET', KEYS[1], 'status') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'status', ARGV[2])
  return 1
end
return 0
"#;
