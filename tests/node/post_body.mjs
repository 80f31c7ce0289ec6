// POST one body through the proxy with undici's ProxyAgent (what OpenClaw installs
// globally), for tests/inspection.rs. Usage: proxy ca url content-type body-file.
// Prints a JSON line: {"status", "would", "body"}.
import { readFileSync } from 'node:fs';
import { fetch, ProxyAgent } from 'undici';

const [proxy, ca, url, contentType, bodyFile] = process.argv.slice(2);
const dispatcher = new ProxyAgent({ uri: proxy, requestTls: { ca: readFileSync(ca) } });
const res = await fetch(url, {
  method: 'POST',
  dispatcher,
  headers: { 'content-type': contentType },
  body: readFileSync(bodyFile),
});
const body = await res.text();
console.log(JSON.stringify({ status: res.status, would: res.headers.get('x-clawguard-would'), body }));
await dispatcher.close();
