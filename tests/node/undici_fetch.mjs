// POST a small JSON body to each URL through the proxy with undici's ProxyAgent (what
// OpenClaw installs globally). Prints "<status> <body>" per URL.
import { readFileSync } from 'node:fs';
import { fetch, ProxyAgent } from 'undici';

const [proxy, ca, ...urls] = process.argv.slice(2);
const dispatcher = new ProxyAgent({ uri: proxy, requestTls: { ca: readFileSync(ca) } });
for (const url of urls) {
  const res = await fetch(url, {
    method: 'POST',
    dispatcher,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ hello: 'from undici' }),
  });
  console.log(`${res.status} ${await res.text()}`);
}
await dispatcher.close();
