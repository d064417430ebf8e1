// node-redis (the `redis` package) through ringproxy, speaking RESP3 (HELLO 3): run by
// tests/e2e/test_resp3.py, which asserts on the JSON printed here.
//   node node_redis_check.js <port> <keys as JSON: {"a": key, "b": key on another shard, "tag": "{t}"}>
const { createClient } = require('redis');

async function main() {
  const port = Number(process.argv[2]);
  const keys = JSON.parse(process.argv[3]);
  const out = {};
  const client = createClient({ socket: { host: '127.0.0.1', port }, RESP: 3 });
  client.on('error', (e) => { out.client_error = String(e); });
  await client.connect();
  const tag = keys.tag;

  out.hello = await client.sendCommand(['HELLO', '3']).then((r) => (r instanceof Map ? Object.fromEntries(r) : r));
  out.set = await client.set(keys.a, 'va');
  await client.set(keys.b, 'vb');
  out.get = await client.get(keys.a);
  out.missing = await client.get(`${keys.a}-missing`);
  out.mget = await client.mGet([keys.a, keys.b, `${keys.b}-missing`]);
  out.exists = await client.exists([keys.a, keys.b]);
  await client.hSet(`${tag}:h`, { f1: '1', f2: '2' });
  out.hgetall = await client.hGetAll(`${tag}:h`);
  await client.zAdd(`${tag}:z`, [{ score: 1.5, value: 'm' }]);
  out.zscore = await client.zScore(`${tag}:z`, 'm');
  await client.sAdd(`${tag}:s`, ['x', 'y']);
  out.smembers = (await client.sMembers(`${tag}:s`)).sort();
  out.incrbyfloat = await client.incrByFloat(`${tag}:f`, 0.5);
  out.multi = await client.multi().set(`${tag}:m`, '1').incr(`${tag}:m`).hGetAll(`${tag}:h`).exec();
  out.eval = await client.eval("return {KEYS[1], ARGV[1]}", { keys: [`${tag}:e`], arguments: ['arg'] });
  const scanned = [];
  for await (const batch of client.scanIterator({ MATCH: `${tag}:*`, COUNT: 100 })) scanned.push(...batch);
  out.scan = scanned.sort();
  out.dbsize = await client.dbSize();
  out.clientName = await client.clientGetName();
  out.ping = await client.ping();
  await client.quit();
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.log(JSON.stringify({ fatal: String(e && e.stack || e) }));
  process.exit(0);
});
