// What the ioredis check scripts share: a watchdog that prints what was gathered and exits 2
// if the script has not finished in 30 s, and clients that report their errors into `output`
// and never reconnect (no commandTimeout: a blocking command may take as long as its own).
const Redis = require("ioredis");

function watchdog(script, output) {
  setTimeout(() => {
    output.timeout = `${script}: not finished after 30 s`;
    console.log(JSON.stringify(output));
    process.exit(2);
  }, 30000).unref();
}

function client(output, port, name) {
  const redis = new Redis({ host: "127.0.0.1", port, connectTimeout: 5000, maxRetriesPerRequest: 0,
    retryStrategy: () => null });
  redis.on("error", (e) => output.errors.push(`${name}: ${e.message}`));
  return redis;
}

module.exports = { watchdog, client };
